from ._options import add_limit_argument, add_progress_argument
from ._source import add_source_arguments, load_source

NAME = "produce"
HELP = "replay a real data set (or your own CSV) into the interactions and items topics, in time order"


def configure(parser):
    add_source_arguments(parser)
    parser.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    add_limit_argument(parser)
    add_progress_argument(parser)


def run(args, settings) -> int:

    from tqdm import tqdm

    from stream.replay import make_producer, replay
    from stream.topics import TopicNames, ensure_topics

    from ..replay_source import item_records, select

    data = load_source(args, settings, NAME)
    if data is None:
        return 2
    names = TopicNames.with_prefix(settings.topic_prefix)
    ensure_topics(
        settings.bootstrap, names, settings.partitions, settings.replication_factor, **settings.kafka_client_options()
    )
    columns = select(data, args.limit)
    producer = make_producer(settings.bootstrap, **settings.kafka_client_options())
    try:
        with tqdm(
            total=len(columns["users"]), unit="ev", desc=f"replaying {data.name}", disable=args.no_progress
        ) as bar:
            stats = replay(
                producer,
                names,
                item_records=item_records(data, set(columns["items"])),
                rate=args.rate,
                progress=bar,
                **columns,
            )
    finally:
        producer.close()
    print(
        f"sent {stats.items_sent} items and {stats.events_sent} events in {stats.seconds:.1f} s "
        f"({stats.rate:.0f} events/s)"
    )
    return 0
