"""Readings, windows, anomaly marks and detector state in Redis TimeSeries, one job a module:

    reading_store.py  ReadingStore: readings, windows, batches, history, verdicts
    replay_guard.py   ReplayGuard: each signed call's nonce accepted once
    readiness.py      problem(): can the functions work with this Redis now?
    keys.py           the Redis key names
    errors.py         what the store raises (StoreUnavailable, TimestampTaken, ...)
    scripts.py        the Lua scripts of lua/ and their named KEYS and ARGV
"""
