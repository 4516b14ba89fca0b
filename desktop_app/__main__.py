from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "generate":
        from desktop_app.cli import main as cli_main

        return cli_main(argv[1:])
    from desktop_app.app.run import run_app

    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
