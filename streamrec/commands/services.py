NAME = "services"
HELP = "start, stop or check the embedded local Kafka broker and Bolt server (127.0.0.1 only)"


def configure(parser):
    parser.add_argument("action", choices=("up", "down", "status"))


def run(args, settings) -> int:
    from ..services import ServiceError, print_status, services_down, services_up

    if args.action == "up":
        try:
            services_up(settings)
        except ServiceError as exc:
            print(f"streamrec services: {exc}")
            return 1
        return 0
    if args.action == "down":
        services_down(settings)
        return 0
    return 0 if print_status(settings) else 1
