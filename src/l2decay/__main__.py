"""The `l2decay` command's entry point (also `python -m l2decay`): reports an L2DECAY_*
environment variable the kernels refuse in one line, then runs l2decay.cli."""
import sys


def main(argv=None):
    import l2decay

    error = l2decay._ENVIRONMENT_ERROR
    if error is None:
        try:
            from .cli import main as run
        except ImportError as exc:
            if not str(exc).startswith("L2DECAY_"):
                raise
            error = exc
    if error is not None:
        print(f"l2decay: error: {error}", file=sys.stderr)
        return 2
    return run(argv)


# The guard matters: worker processes are spawned, and a spawned process imports the parent's
# main module (this one, under another name) before it runs its task.
if __name__ == "__main__":
    sys.exit(main())
