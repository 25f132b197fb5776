import pytest

from core.vocabulary import Vocabulary, english_share, is_name, ordinary_zipf

DOCS = [
    "Milvus HNSW index parameters: M and efConstruction. Configure timezone per collection.",
    "Autoscaling Milvus query nodes with Kubernetes HPA. Run Milvus standalone in Docker instead.",
    "How Milvus works: the work is done per segment. COSINE is equal to IP on normalized vectors.",
]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary(DOCS)


def test_product_names_the_docs_never_use_are_unknown(vocab: Vocabulary) -> None:
    assert vocab.unknown_terms("can I run milvus standalone with podman instead of docker?") == ["podman"]
    assert vocab.unknown_terms("does milvus speak GraphQL") == ["graphql"]
    assert vocab.unknown_terms("register milvus in Consul for discovery") == ["consul"]  # a name mid-sentence


@pytest.mark.parametrize(
    ("question", "name"),
    [
        ("can milvus keep its metadata in cassandra?", "cassandra"),
        ("is there an official php sdk?", "php"),
        ("a milvus plugin for wordpress?", "wordpress"),
    ],
)
def test_common_words_used_alike_in_every_language_are_names(
    vocab: Vocabulary, question: str, name: str
) -> None:
    """Common enough to pass for ordinary words, but as common in German or Spanish text as in
    English: product names. They count, weakly."""
    assert is_name(name) and ordinary_zipf(name) >= 3
    (term,) = (t for t in vocab.analyse(question).unknown if t.word == name)
    assert 0.4 < term.rarity < 0.7


def test_unknown_names_carry_their_rarity(vocab: Vocabulary) -> None:
    (podman,) = vocab.analyse("milvus on podman").unknown
    (graphql,) = vocab.analyse("milvus over graphql").unknown
    assert podman.rarity == 1.0  # no word list has it
    assert 0 < graphql.rarity < 1  # a little known in ordinary text


@pytest.mark.parametrize(
    "question",
    [
        "we have ~50m 768-dim vectors on 64gb nodes, 20k rows",  # sizes with units
        "upgraded to v2.4.1 and set 1e6 rows",  # versions, exponents
        "search near a lat/lon, and our pub/sub r/w mix",  # abbreviation pairs
        "my boss says this is crazy, can we swap it asap? pros/cons? meh",  # ordinary English
        "I forgot to flush and want to abort, somewhat urgent",
        "wenn ich die Sammlung lösche, ist der Index weg?",  # German
        "die Zeitstempel liegen immer zwei Stunden daneben",  # a rare German word, in German
        "wie kann ich das umbiegen?",
        "we index hotel reviews, pizza menus and taxi rides",  # everyday words used everywhere
        "¿cómo creo un índice rápido?",  # Spanish
        "一个database最多可以存放多少条数据呢",  # Chinese
    ],
)
def test_numbers_and_ordinary_words_in_any_language_are_never_unknown(
    vocab: Vocabulary, question: str
) -> None:
    assert vocab.unknown_terms(question) == []


@pytest.mark.parametrize(
    "question",
    [
        "filter on my_vector_field fails",  # snake_case
        "the field userEmbedding is empty",  # camelCase
        "collection 'zorblax' and \"quuxfield\" and `frobnicate()`",  # quoted values and code
        "id 3f2504e0-4f89-11d3-9a0c-0305e82c3301 not found",  # a UUID
        "values aaa, bbb, ccc in the column",  # placeholders
        "call pymilvus.MilvusClient.frob on vec7",  # dotted paths, digits in names
    ],
)
def test_identifiers_and_code_are_never_unknown(vocab: Vocabulary, question: str) -> None:
    terms = vocab.analyse(question)
    assert terms.unknown == ()
    assert terms.identifiers


def test_inflections_typos_and_chat_words_are_known(vocab: Vocabulary) -> None:
    assert vocab.unknown_terms("how do timezones work") == []  # timezone + s
    assert vocab.unknown_terms("how to autoscale") == []  # autoscaling
    assert vocab.unknown_terms("configuring kubernets") == []  # one typo away
    assert vocab.unknown_terms("cosine is equel to IP") == []  # one typo away from "equal"
    assert vocab.unknown_terms("hey thanks, anyone know? doesnt work") == []
    assert vocab.unknown_terms("HNSW M=16 in 2.6") == []  # digits and short tokens
    assert vocab.unknown_terms("collectoin index paramaters") == []  # a swapped pair is one typo
    assert vocab.unknown_terms("any gotchas with HNSW?") == []  # "gotcha" is an ordinary word


@pytest.mark.parametrize(
    "question",
    [
        "our fastapi app times out on HNSW search",
        "HNSW search behind traefik is slow",
        "we use dagster to insert into Milvus, how do I configure HNSW?",
        "how do I configure HNSW? I'm using fastapi.",  # after the first sentence
    ],
)
def test_unknown_names_of_the_askers_setup_are_context(vocab: Vocabulary, question: str) -> None:
    (term,) = vocab.analyse(question).unknown
    assert term.in_context


def test_an_unknown_name_the_question_asks_about_is_not_context(vocab: Vocabulary) -> None:
    (term,) = vocab.analyse("can I run Milvus standalone with podman instead of Docker?").unknown
    assert term.word == "podman" and not term.in_context


def test_a_real_word_one_edit_from_a_docs_word_is_not_a_typo_of_it() -> None:
    """A name is one edit from the docs' "consult" ("Consul"), but a word of its own: a name
    mid-sentence stays unknown. Typos are no language's words, and still match ("equel")."""
    docs = Vocabulary(["Milvus: consult the sizing tool. Ignition of the cluster. Equal weights."])
    assert docs.unknown_terms("can milvus register its nodes in Consul for discovery?") == ["consul"]
    assert docs.unknown_terms("are the weights equel?") == []
    # still a key term for the support signal, as the gate was fitted
    assert "consul" in docs.analyse("register nodes in Consul").key_terms


def test_key_terms_are_the_docs_words_of_the_question(vocab: Vocabulary) -> None:
    terms = vocab.analyse("how do I configure the HNSW timezone with podman?")
    assert set(terms.key_terms) == {"configure", "hnsw", "timezone"}
    assert vocab.idf("hnsw") > vocab.idf("milvus")  # in one passage vs in all of them


def test_ordinary_zipf_uses_several_languages() -> None:
    assert ordinary_zipf("wenn") > 5  # German
    assert ordinary_zipf("podman") == 0


def test_specificity_is_high_for_words_rare_in_the_docs_and_in_english(vocab: Vocabulary) -> None:
    hnsw, instead = vocab.specificity("hnsw"), vocab.specificity("instead")
    assert hnsw == pytest.approx(0.5)  # in one of three passages (idf log 2 of log 4), no English word
    assert 0 < instead < hnsw / 3  # as rare in the docs, but an everyday English word
    assert vocab.specificity("milvus") == 0.0  # in every passage
    assert vocab.specificity("podman") == 0.0  # the docs don't use it: an unknown name instead
    assert vocab.uses("timezone") and not vocab.uses("colection")


def test_english_share_is_low_for_questions_in_other_languages() -> None:
    assert english_share("how do I pick the HNSW M for 50m vectors?") > 0.8
    assert english_share("wie kann ich mit pymilvus einen Alias auf eine neue Collection umbiegen?") < 0.5
    assert english_share("milvusのreplicaとshardの違いは何ですか") < 0.5
    assert english_share("") == 1.0
