"""The ``condgan`` command: one module per subcommand, the parser and error handling in :mod:`.main`."""
from .main import describe_os_error, main, make_parser, resolve_config

__all__ = ["describe_os_error", "main", "make_parser", "resolve_config"]
