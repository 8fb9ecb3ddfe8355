"""The ``condgan`` command: one module per subcommand (train, eval, sample, plot, prepare, presets, reproduce,
import-studiogan), the parser, exit codes and error handling in :mod:`.main`."""
from .main import describe_os_error, main, make_parser
from .train import resolve_config

__all__ = ["describe_os_error", "main", "make_parser", "resolve_config"]
