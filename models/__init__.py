"""Detection models: NAB data, NAB scoring, training and export of the SavedModel."""
