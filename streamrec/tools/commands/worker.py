NAME = "worker"
HELP = "run a worker: interactions -> graph store -> model -> recommendations (Faust agent)"


def configure(parser):
    pass


def run(args, settings) -> int:
    from stream.topics import TopicError

    from ...runtime.worker import StartupError, run_worker

    try:
        return run_worker(settings)
    except (TopicError, StartupError) as exc:  # what to fix, in one line, no traceback
        print(f"streamrec worker: {exc}")
        return 2
