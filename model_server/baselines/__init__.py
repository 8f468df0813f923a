from .edgebank import EdgeBank  # noqa: F401
from .popularity import Popularity, RecentPopularity  # noqa: F401
