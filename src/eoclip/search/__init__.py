"""Similarity search over EmbeddingTables: the chips nearest a query chip, within a modality
or across modalities (the towers share one space); exact by chunked matrix products, or
approximate with a FAISS HNSW index (`pip install 'eoclip[ann]'`)."""

from eoclip.search.evaluate import recall_at_k, same_chip_hits
from eoclip.search.exact import cosine_topk, normalize_rows
from eoclip.search.query import (
    METHODS,
    RESULT_COLUMNS,
    SearchConfig,
    SearchError,
    search_table,
    write_search_results,
)

__all__ = [
    "METHODS",
    "RESULT_COLUMNS",
    "SearchConfig",
    "SearchError",
    "cosine_topk",
    "normalize_rows",
    "recall_at_k",
    "same_chip_hits",
    "search_table",
    "write_search_results",
]
