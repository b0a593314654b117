"""`python -m pipelines.cli ...` is `vaepipe ...`."""
from pipelines.cli.main import run

if __name__ == "__main__":
    run()
