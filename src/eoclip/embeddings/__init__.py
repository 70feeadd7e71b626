"""Embedding tables: one vector per chip and modality, stored as GeoParquet."""

from eoclip.embeddings.table import (
    EMB_PREFIX,
    META_KEY,
    EmbeddingTableError,
    embedding_matrix,
    embedding_modalities,
    read_embedding_table,
    write_embedding_table,
)

__all__ = [
    "EMB_PREFIX",
    "META_KEY",
    "EmbeddingTableError",
    "embedding_matrix",
    "embedding_modalities",
    "read_embedding_table",
    "write_embedding_table",
]
