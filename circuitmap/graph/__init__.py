"""The circuit graph, without the model or torch: building it from a map's measurements,
merging, pruning, supernodes, the file exports and the interactive explorer."""
