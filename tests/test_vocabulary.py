from core.vocabulary import Vocabulary

DOCS = [
    "HNSW index parameters: M and efConstruction. Configure timezone per collection.",
    "Autoscaling query nodes with Kubernetes HPA. Run Milvus standalone in Docker instead.",
    "How it works: the work is done per segment.",
]


def test_unknown_terms_are_words_the_docs_never_use() -> None:
    vocab = Vocabulary(DOCS)
    assert vocab.unknown_terms("can I run milvus standalone with podman instead of docker?") == ["podman"]
    assert vocab.unknown_terms("does milvus have a GraphQL endpoint") == ["graphql", "endpoint"]


def test_inflections_typos_and_chat_words_are_known() -> None:
    vocab = Vocabulary(DOCS)
    assert vocab.unknown_terms("how do timezones work") == []  # timezone + s
    assert vocab.unknown_terms("how to autoscale") == []  # autoscaling
    assert vocab.unknown_terms("configuring kubernets") == []  # one typo away
    assert vocab.unknown_terms("hey thanks, anyone know? doesnt work") == []
    assert vocab.unknown_terms("HNSW M=16 in 2.6") == []  # digits and short tokens
