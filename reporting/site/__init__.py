"""The parliament site: a static, multilingual, printable report of the reserve's attestations.

``load_bundles`` and ``load_export`` read the sources (bundle files, the treasury's export file);
``publish_site`` writes the folder; ``site_server`` serves it on the loopback for browsing.
"""

from reporting.site.errors import CatalogueError, SiteError, SourceError
from reporting.site.publish import PublishedSite, publish_site
from reporting.site.serve import site_server
from reporting.site.sources import (
    EXPORT_FORMAT,
    ExecutedSpend,
    FundAllocation,
    FundKind,
    PublishedBundle,
    SpendState,
    TreasuryRecords,
    load_bundles,
    load_export,
)

__all__ = [
    "EXPORT_FORMAT",
    "CatalogueError",
    "ExecutedSpend",
    "FundAllocation",
    "FundKind",
    "PublishedBundle",
    "PublishedSite",
    "SiteError",
    "SourceError",
    "SpendState",
    "TreasuryRecords",
    "load_bundles",
    "load_export",
    "publish_site",
    "site_server",
]
