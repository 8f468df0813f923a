NAME = "produce"
HELP = "replay a real data set (or your own CSV) into the interactions and items topics, in time order"


def configure(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=("rees46", "wikipedia", "ml-100k"))
    source.add_argument("--events-csv", metavar="PATH", help="CSV with columns user_id,item_id,type,ts[,item_text]")
    parser.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N events")


def run(args, settings) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from stream.replay import make_producer, replay
    from stream.topics import TopicNames, ensure_topics

    from ..datasets import DatasetError, load_dataset
    from ..replay_source import item_records, select

    try:
        data = load_dataset(args.dataset, settings.data_dir, settings.home / "data",
                            Path(args.events_csv) if args.events_csv else None)
    except DatasetError as exc:
        print(f"streamrec produce: {exc}")
        return 2
    names = TopicNames.with_prefix(settings.topic_prefix)
    ensure_topics(settings.bootstrap, names, settings.partitions, **settings.kafka_client_options())
    columns = select(data, args.limit)
    producer = make_producer(settings.bootstrap, **settings.kafka_client_options())
    try:
        with tqdm(total=len(columns["users"]), unit="ev", desc=f"replaying {data.name}") as bar:
            stats = replay(producer, names, item_records=item_records(data, set(columns["items"])), rate=args.rate,
                           progress=bar, **columns)
    finally:
        producer.close()
    print(f"sent {stats.items_sent} items and {stats.events_sent} events in {stats.seconds:.1f} s "
          f"({stats.rate:.0f} events/s)")
    return 0
