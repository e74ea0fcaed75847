"""Client layer shared by the nuevo, listar and detectar functions.

Data flows one way: event -> params -> store / serving / detection -> render -> response.
"""
