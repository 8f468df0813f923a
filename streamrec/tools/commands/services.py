NAME = "services"
HELP = (
    "install, start, stop or check the local Kafka broker and graph server (127.0.0.1 only; "
    "STREAMREC_LOCAL_STACK=apache|light)"
)


def configure(parser):
    parser.add_argument(
        "action",
        choices=("install", "up", "down", "status"),
        help="install: fetch what the stack needs (the apache stack's jars); up: start (and wait "
        "until they answer); down: stop what `up` started; status: name, version, pid",
    )


def run(args, settings) -> int:
    from ..servers import ServiceError, install, print_status, services_down, services_up

    try:
        if args.action == "install":
            install(settings)
        elif args.action == "up":
            services_up(settings)
        elif args.action == "down":
            services_down(settings)
        else:
            return 0 if print_status(settings) else 1
    except ServiceError as exc:
        print(f"streamrec services {args.action}: {exc}")
        return 1
    return 0
