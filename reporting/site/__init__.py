"""The parliament site: a static, multilingual, printable report of the reserve's attestations.

``load_bundles`` and ``load_treasury`` read the sources (bundle files, the treasury database);
``publish_site`` writes the folder; ``site_server`` serves it on the loopback for browsing.
"""

from reporting.site.errors import CatalogueError, SiteError, SourceError
from reporting.site.publish import PublishedSite, publish_site
from reporting.site.serve import site_server
from reporting.site.sources import (
    ExecutedSpend,
    FundAllocation,
    PublishedBundle,
    TreasuryRecords,
    load_bundles,
    load_treasury,
)

__all__ = [
    "CatalogueError",
    "ExecutedSpend",
    "FundAllocation",
    "PublishedBundle",
    "PublishedSite",
    "SiteError",
    "SourceError",
    "TreasuryRecords",
    "load_bundles",
    "load_treasury",
    "publish_site",
    "site_server",
]
