"""What is read and written: corpora, prompt sets, atomic writes and the run-folder lock."""
