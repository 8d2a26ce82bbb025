"""The one exception type for user mistakes: the CLI prints it as one line and exits 2."""


class CircuitmapError(Exception):
    """A problem with the user's input (bad layer, missing SAE, unreadable run folder, ...)."""


def check_range(name: str, value: int, low: int, high: int) -> None:
    """Raise a one-line CircuitmapError unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise CircuitmapError(f"{name} {value} is out of range: valid values are {low}..{high}")
