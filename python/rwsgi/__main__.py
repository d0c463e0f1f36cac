"""`python -m rwsgi ...`: the same as the `rwsgi` console script."""

from rwsgi import cli

if __name__ == "__main__":
    cli(["python -m rwsgi", *__import__("sys").argv[1:]])
