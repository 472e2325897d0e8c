"""``python -m mup_derive``: the command line."""
from .cli import main

main()
