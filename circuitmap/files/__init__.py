"""What is read and written: corpora, run folders (atomic writes), graph exports and the
interactive explorer page."""
