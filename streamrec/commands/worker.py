NAME = "worker"
HELP = "run a worker: interactions -> graph store -> model -> recommendations (Faust agent)"


def configure(parser):
    pass


def run(args, settings) -> int:
    from ..worker import run_worker

    return run_worker(settings)
