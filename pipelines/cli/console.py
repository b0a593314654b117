"""How commands talk to a person: progress lines on stdout."""


def progress(message: str) -> None:
    print(f"  {message}", flush=True)
