"""The composition root and the one service object the adapters talk to.

    async with open_service(settings) as service:
        retrieval = await service.search("what is HNSW M?")

`open_service` builds everything from `Settings` and closes it in reverse order. Nothing here
knows about Slack, Discord or the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from core.chunking import Chunker
from core.config import Settings
from core.embed_cache import build_embedder
from core.embedding import Embedder
from core.errors import (
    DocsBotError,
    EmbeddingError,
    IndexBuildingError,
    IndexEmptyError,
    IndexMismatchError,
    StoreError,
)
from core.expansion import docs_terms
from core.fingerprint import reader_differences
from core.gate import Decision, Gate, GateModel
from core.generation import ChatLLM, LLMBusyError, LLMError, LLMLengthLimitError, OpenAIChatLLM
from core.indexer import Indexer
from core.links import LinkPolicy
from core.models import Answer, Outcome, Retrieval, Source
from core.progress import ProgressListener, ProgressTracker, ReindexProgress
from core.prompting import (
    SOURCE_CHARS,
    Turn,
    attribute,
    backed_beyond_paragraphs,
    build_messages,
    conversation_of,
    finalize,
    has_citations,
    is_meta_request,
    is_small_talk,
    may_end_sentence,
    repeating_from,
    says_not_covered,
    search_query,
    whole_sentences,
)
from core.retrieval import RetrievalConfig, Retriever, plain_text, without_mentions
from core.runlog import IndexRun, RunLog
from core.scope_check import Calibration, asks_whether_supported, check_reads
from core.scope_check import ask as ask_scope
from core.sources import BUNDLED, SnapshotSource, is_site_url, open_source
from core.store import ChunkStore
from core.translation import needs_translation, to_english
from core.widening import limit as widened_limit

log = logging.getLogger(__name__)

USAGE = "Ask me a question about Milvus, for example: how do I choose HNSW parameters?"
SMALL_TALK = (
    "Hi! I answer questions about Milvus from its documentation, with links to the sources. "
    "Try: how do I choose HNSW parameters?"
)
COMMUNITY = (
    "For questions the docs don't answer, the Milvus community on GitHub Discussions and Discord can help."
)
META_REPLY = (
    "I only answer questions about Milvus from its documentation, and my instructions stay as they "
    "are. Try: how do I choose HNSW parameters?"
)
#: `Decision.by` / `Answer.declined_by` for a message about the bot's own instructions or persona
META_REQUEST = "meta_request"
UNGROUNDED = (
    "I couldn't find this in the Milvus docs: the draft answer cited none of the docs passages I "
    "found, and none of its statements could be matched to them, so I withdrew it. The closest "
    "pages are below. " + COMMUNITY
)


class ReindexJob:
    """One running (or finished) reindex. Callers share it: a second request joins this one."""

    def __init__(self, trigger: str, source: str) -> None:
        self.trigger = trigger
        self.source = source
        self.tracker = ProgressTracker()
        self.task: asyncio.Task[IndexRun] | None = None

    @property
    def progress(self) -> ReindexProgress:
        return self.tracker.current

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def subscribe(self, listener: ProgressListener) -> Callable[[], None]:
        """Call `listener` now and on every progress change; returns the unsubscribe function."""
        return self.tracker.subscribe(listener)

    async def wait(self) -> IndexRun:
        """The run record, once the job ends. Cancelling the waiter does not cancel the job."""
        assert self.task is not None
        return await asyncio.shield(self.task)


@dataclass(frozen=True)
class IndexStatus:
    uri: str
    collection: str
    embedding_model: str
    pages: int
    chunks: int
    hybrid: bool
    last_run: IndexRun | None


class RagService:
    def __init__(
        self, settings: Settings, store: ChunkStore, embedder: Embedder, llm: ChatLLM | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.llm = llm
        gate_model = GateModel.load()
        self.retriever = Retriever(
            store,
            embedder,
            RetrievalConfig(
                top_k=settings.top_k,
                candidates=settings.retrieval_candidates,
                rrf_k=settings.rrf_k,
                dense_weight=settings.dense_weight,
                sparse_weight=settings.sparse_weight,
                gate_sparse_weight=gate_model.sparse_weight,
                passage_chars=settings.passage_chars,
            ),
        )
        self._source_chars = max(SOURCE_CHARS, widened_limit(settings.passage_chars))
        # the gate and the scope check as one decision, for the LLM it was fitted with
        self.scope_calibration = Calibration.load_default()
        self.gate = Gate(
            gate_model,
            min_confidence=settings.min_confidence,
            use_unknown_terms=settings.decline_unknown_terms,
            embedding_model=settings.embedding_model,
        )
        self.runs = RunLog(settings.data_dir, settings.collection)
        self.indexer = Indexer(
            store,
            embedder,
            Chunker(settings.chunk_size, settings.chunk_overlap),
            self.runs,
            max_error_rate=settings.reindex_max_error_rate,
            max_delete_ratio=settings.reindex_max_delete_ratio,
            timeout=settings.reindex_timeout,
        )
        self._ready = False
        self._job: ReindexJob | None = None
        #: Indexed instead of the site when it can't be crawled and the index is empty.
        self.fallback_source = BUNDLED

    async def search(self, question: str, k: int | None = None, expansion: str | None = None) -> Retrieval:
        """The best passages for a question, with the retrieval-confidence signal."""
        if not self._ready:
            if not await asyncio.to_thread(self.store.open):
                if self.running_reindex is not None:
                    raise IndexBuildingError("the collection does not exist yet; a reindex is running")
                raise IndexEmptyError("the collection does not exist yet")
            await self.check_index()
            self._ready = True
        return await self.retriever.search(question, k, expansion)

    async def retrieve(
        self,
        query: str,
        k: int | None = None,
        *,
        translate: bool = True,
        expand: bool = True,
        check_scope: bool = True,
    ) -> Retrieval:
        """`search` as questions get it, with the LLM's help when there is one: a question mostly
        in another language is searched in English (`core.translation`); a question the gate is
        unsure about gets the LLM's scope check on that search (`core.scope_check`, its verdict
        kept in the Retrieval for `judge`); and for a question that is let through, the docs' own
        terms for it are searched as well (`core.expansion`). Each falls back to the plain search
        when the LLM fails. `translate`/`expand`/`check_scope` turn them off on top of the
        settings (`eval` measures each)."""
        llm, settings = self.llm, self.settings
        retrieval = None
        if llm is not None and translate and settings.translate_questions and needs_translation(query):
            english = await to_english(llm, query, settings.translate_timeout)
            if english is not None:
                retrieval = dataclasses.replace(await self.search(english, k), translated_from=query)
        if retrieval is None:
            retrieval = await self.search(query, k)
        if check_scope and self._needs_scope_check(self.decide(retrieval), retrieval):
            retrieval = await self._with_scope_verdict(retrieval)
        if llm is None or not (expand and settings.expand_questions):
            return retrieval
        if not (await self.judge(retrieval, check_scope=check_scope)).covered:
            return retrieval  # a question the bot declines needs no better pages
        terms = await docs_terms(llm, retrieval.query, settings.expand_timeout)
        if terms is None:
            return retrieval
        try:
            expanded = await self.search(retrieval.query, k, terms)
        except (StoreError, EmbeddingError) as exc:  # the question's own search still stands
            log.warning("searching the docs' terms failed, keeping the question's own search: %s", exc)
            return retrieval
        return dataclasses.replace(
            expanded,
            translated_from=retrieval.translated_from,
            scope_checked=retrieval.scope_checked,
            scope_verdict=retrieval.scope_verdict,
            scope_yes=retrieval.scope_yes,
        )

    async def check_index(self) -> None:
        """Raise IndexMismatchError when the index was built with another embedding model than
        the configured one: its vectors and the questions' would be in different spaces.
        (`docsbot index` rebuilds such an index by itself; an empty one passes.)"""
        built = await asyncio.to_thread(self.store.fingerprint)
        if built is not None and (problems := reader_differences(built, self.embedder)):
            raise IndexMismatchError(
                f"the index in {self.settings.collection} was built differently ({'; '.join(problems)}): "
                "run `docsbot index` to rebuild it, or set the setting back"
            )

    async def ask(self, question: str, history: Sequence[Turn] = (), asker: str = "") -> Answer:
        """The whole answer at once (see `stream`)."""
        answer: Answer | None = None
        async for part in self.stream(question, history, asker):
            if isinstance(part, Answer):
                answer = part
        assert answer is not None  # stream always ends with an Answer
        return answer

    async def stream(
        self, question: str, history: Sequence[Turn] = (), asker: str = ""
    ) -> AsyncIterator[str | Answer]:
        """Text deltas as the LLM writes them, then the final `Answer` (always, exactly once).

        `history` is the earlier conversation; only the bot's turns and those whose `author` is
        `asker` are used (thread history is data, and other people's messages are left out).

        Questions the docs don't cover, small talk and bad input never reach the LLM. Failures
        end in an Answer with one honest sentence and the most relevant links; never an exception.
        """
        started = time.perf_counter()
        answer: Answer | None = None
        try:
            async for part in self._stream(plain_text(question).strip(), conversation_of(history, asker)):
                if isinstance(part, Answer):
                    answer = part
                else:
                    yield part
        except DocsBotError as exc:
            log.warning("question failed: %s", exc)
            log.debug("details", exc_info=exc)
            answer = Answer(text=chat_sentence(exc), outcome=Outcome.ERROR, error=exc.code)
        except Exception:
            log.exception("unexpected error while answering")
            answer = Answer(text=DocsBotError.user_message, outcome=Outcome.ERROR, error=DocsBotError.code)
        assert answer is not None
        answer = dataclasses.replace(answer, seconds=time.perf_counter() - started)
        log.info(
            "question answered: outcome=%s seconds=%.2f sources=%d",
            answer.outcome,
            answer.seconds,
            len(answer.sources),
        )
        yield answer

    def check_input(self, question: str) -> Answer | None:
        """The answer to an empty or oversized question (usage help, "too long"), else None.
        Adapters call it before posting anything; `stream` applies it too."""
        question = question.strip()
        if not any(ch.isalnum() for ch in without_mentions(question)):
            # nothing asked: blank, or only mentions, punctuation, emoji or an empty code fence
            return Answer(text=USAGE, outcome=Outcome.EMPTY)
        if len(question) > self.settings.max_question_chars:
            return Answer(
                text=f"That message is too long for me ({len(question)} characters; the limit is "
                f"{self.settings.max_question_chars}). Please ask a shorter question.",
                outcome=Outcome.TOO_LONG,
            )
        return None

    async def _stream(self, question: str, history: Sequence[Turn]) -> AsyncIterator[str | Answer]:
        if (refused := self.check_input(question)) is not None:
            yield refused
            return
        if is_small_talk(question):
            yield Answer(text=SMALL_TALK, outcome=Outcome.SMALL_TALK)
            return
        if is_meta_request(question):
            log.info("question declined: a request about the bot's own instructions or persona")
            yield Answer(text=META_REPLY, outcome=Outcome.NOT_COVERED, declined_by=META_REQUEST)
            return
        retrieval = await self.retrieve(search_query(question, history))
        nearest = _sources(retrieval, 3)
        decision = await self.judge(retrieval)
        if not decision.covered:
            log.info("question declined by the %s: %s", decision.by.replace("_", " "), decision.reason)
            unknown = ", ".join(f"'{t}'" for t in retrieval.unknown_terms)
            why = f" (they never mention {unknown})" if unknown else ""
            yield Answer(
                text=f"I couldn't find this in the Milvus docs{why}. The closest pages are below. "
                + COMMUNITY,
                outcome=Outcome.NOT_COVERED,
                sources=nearest,
                retrieval=retrieval,
                declined_by=decision.by,
            )
            return
        if self.llm is None:
            yield Answer(
                text="Answer generation is off (no LLM configured); these docs sections match best:",
                outcome=Outcome.ANSWERED,
                sources=_sources(retrieval, len(retrieval.hits)),
                retrieval=retrieval,
            )
            return
        async for part in self._generate(question, history, retrieval):
            yield part

    async def _generate(
        self, question: str, history: Sequence[Turn], retrieval: Retrieval
    ) -> AsyncIterator[str | Answer]:
        """Stream the LLM's answer through the link policy (model output is untrusted: only
        docs links and links quoted in the passages survive, mentions are defused). A failure
        keeps what streamed, adds one honest sentence and the sources."""
        assert self.llm is not None
        policy = LinkPolicy(self.settings.docs_public_base_url, [hit.text for hit in retrieval.hits])
        cleaner = policy.stream()
        parts: list[str] = []
        cut_note = ""
        try:
            stream = self.llm.stream(build_messages(question, retrieval.hits, history, self._source_chars))
            async with contextlib.aclosing(stream):  # a loop stopped early closes the LLM request
                async for delta in stream:
                    parts.append(delta)
                    if may_end_sentence(delta) and (cut := repeating_from("".join(parts))) is not None:
                        # the model writes the same again and again until the token limit: stop it
                        log.warning("answer stopped: the model repeats itself after %d characters", cut)
                        parts = ["".join(parts)[:cut]]
                        break
                    if shown := cleaner.feed(delta):
                        yield shown
        except LLMLengthLimitError as exc:
            # a whole answer up to LLM_MAX_TOKENS: keep its complete sentences, say it was cut
            log.warning("answer cut: %s", exc)
            parts = [whole_sentences("".join(parts))]
            cut_note = exc.cut_off_message
        except LLMBusyError as exc:
            log.warning("LLM busy: %s", exc)
            yield Answer(
                text=exc.user_message,
                outcome=Outcome.BUSY,
                sources=_sources(retrieval, 3),
                retrieval=retrieval,
                error=exc.code,
            )
            return
        except LLMError as exc:
            log.warning("LLM failed: %s", exc)
            log.debug("details", exc_info=exc)
            if rest := cleaner.flush():
                yield rest
            streamed = policy.clean("".join(parts)).strip()
            if streamed:
                text, sources = finalize(streamed, retrieval.hits)
                text = f"{text}\n\n{exc.cut_off_message}"
            else:
                text = f"{exc.user_message} These docs sections look relevant:"
                sources = _sources(retrieval, 3)
            yield Answer(
                text=text, outcome=Outcome.ERROR, sources=sources, retrieval=retrieval, error=exc.code
            )
            return
        if rest := cleaner.flush():
            yield rest
        text, sources = finalize(policy.clean("".join(parts)), retrieval.hits)
        if says_not_covered(text):
            # the gate let it through, but the model found no answer in the passages: a decline,
            # with the nearest pages rather than "sources" the answer doesn't use
            log.info("question declined by the model: %r", text[:200])
            yield Answer(
                text=f"{text}\n\nThe closest pages are below. {COMMUNITY}",
                outcome=Outcome.NOT_COVERED,
                sources=_sources(retrieval, 3),
                retrieval=retrieval,
                declined_by="model",
            )
            return
        citations = "model" if has_citations(text) else ""
        if not citations and has_citations(matched := attribute(text, retrieval.hits)):
            text, sources = finalize(matched, retrieval.hits)
            citations = "matched"
        # uncited and unattributable: the rest of `core.prompting.grounded` decides
        if (
            self.settings.answer_grounding
            and not citations
            and not backed_beyond_paragraphs(text, retrieval.hits)
        ):
            log.info("answer withdrawn: it cites no passage and no passage backs it: %r", text[:200])
            yield Answer(
                text=UNGROUNDED,
                outcome=Outcome.NOT_COVERED,
                sources=_sources(retrieval, 3),
                retrieval=retrieval,
                declined_by="grounding",
            )
            return
        if cut_note:
            text = f"{text}\n\n{cut_note}"
        yield Answer(
            text=text, outcome=Outcome.ANSWERED, sources=sources, retrieval=retrieval, citations=citations
        )

    async def warm_up(self) -> None:
        """Load the model and the vocabulary now, so the first question is not the slow one."""
        await self.search("warm up")

    def decide(self, retrieval: Retrieval) -> Decision:
        """The retrieval gate (`core.gate`): do the docs cover the question, and why (not). A
        message about the bot's own instructions or persona is declined before it (`stream` never
        searches one; `eval` counts it as declined, as the user sees it)."""
        if is_meta_request(retrieval.query):
            reason = "a request about the bot's own instructions or persona, not a docs question"
            return Decision(False, 0.0, self.gate.model.threshold, reason, {}, by=META_REQUEST)
        return self.gate.decide(retrieval)

    async def judge(self, retrieval: Retrieval, *, check_scope: bool = True) -> Decision:
        """`decide`, then, when the gate lets the question through but is unsure (probability
        below SCOPE_CHECK_BELOW) or the question asks whether Milvus has something, and there is
        an LLM, its scope check (`core.scope_check`; the
        verdict `retrieve` already got, else asked now): a NO declines the question.
        `check_scope=False` turns the check off on top of the settings (`eval` measures the gate
        alone by default)."""
        decision = self.decide(retrieval)
        if not (check_scope and self._needs_scope_check(decision, retrieval)):
            return decision
        if not retrieval.scope_checked:
            retrieval = await self._with_scope_verdict(retrieval)
        calibration, llm = self.scope_calibration, self.llm
        if calibration and llm and calibration.applies_to(llm.model) and retrieval.scope_yes is not None:
            p = calibration.probability(
                decision.probability, retrieval.scope_yes, asks_whether_supported(retrieval.query)
            )
            if p >= calibration.threshold:
                return decision
            reason = (
                f"{decision.reason}; scope check: the LLM's P(YES)={retrieval.scope_yes:.2f}; with the "
                f"gate's, P(covered)={p:.2f} < {calibration.threshold:.2f}"
            )
            return dataclasses.replace(decision, covered=False, reason=reason, by="scope_check")
        if retrieval.scope_verdict is not False:
            return decision
        reason = f"{decision.reason}; scope check: the LLM found the passages do not describe it"
        return dataclasses.replace(decision, covered=False, reason=reason, by="scope_check")

    def _needs_scope_check(self, decision: Decision, retrieval: Retrieval) -> bool:
        settings = self.settings
        return (
            self.llm is not None
            and settings.scope_check
            and check_reads(decision, retrieval.query, settings.scope_check_below)
        )

    async def _with_scope_verdict(self, retrieval: Retrieval) -> Retrieval:
        assert self.llm is not None
        seconds = self.settings.scope_check_timeout
        verdict = await ask_scope(self.llm, retrieval.query, retrieval.hits, seconds)
        return dataclasses.replace(
            retrieval, scope_checked=True, scope_verdict=verdict.covered, scope_yes=verdict.p_yes
        )

    def is_covered(self, retrieval: Retrieval) -> bool:
        return self.decide(retrieval).covered

    def start_reindex(
        self,
        source: str | None = None,
        *,
        full: bool = False,
        force: bool = False,
        trigger: str = "admin",
    ) -> tuple[ReindexJob, bool]:
        """Start a reindex in the background, or join the one running (single-flight).

        Returns the job and whether this call started it. Answers keep coming from the current
        index meanwhile; changed pages are swapped in as they are embedded.
        """
        if self._job is not None and not self._job.done:
            log.info("reindex requested by %s: joining the running one", trigger)
            return self._job, False
        job = ReindexJob(trigger, source or self.settings.docs_source)
        job.task = asyncio.create_task(self._reindex(job, full, force), name=f"reindex-{trigger}")
        self._job = job
        return job, True

    @property
    def running_reindex(self) -> ReindexJob | None:
        return self._job if self._job is not None and not self._job.done else None

    async def stop_reindex(self, grace: float) -> None:
        """Stop a running reindex (shutdown): it stops at once, but a Milvus write already in
        flight is waited for, up to `grace` seconds, before its lock and lease are released and
        the store closes. The run is recorded as interrupted; the next run completes it."""
        job = self.running_reindex
        if job is None or job.task is None:
            return
        log.warning("shutdown interrupts the running reindex (%s); the next run resumes it", job.trigger)
        job.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, DocsBotError):
            await asyncio.wait_for(job.task, grace)

    async def index(
        self,
        source: str | None = None,
        *,
        full: bool = False,
        force: bool = False,
        trigger: str = "cli",
        progress: ProgressListener | None = None,
    ) -> IndexRun:
        """Reindex and wait for the run record (joins a running reindex, like `start_reindex`)."""
        job, _ = self.start_reindex(source, full=full, force=force, trigger=trigger)
        unsubscribe = job.subscribe(progress) if progress else None
        try:
            return await job.wait()
        finally:
            if unsubscribe:
                unsubscribe()

    async def _reindex(self, job: ReindexJob, full: bool, force: bool) -> IndexRun:
        docs = open_source(job.source, self.settings)
        run = await self.indexer.run(docs, full=full, force=force, trigger=job.trigger, progress=job.tracker)
        if run.outcome == "failed" and is_site_url(job.source) and not await self._has_pages():
            log.warning(
                "the docs site %s could not be crawled (%s) and the index is empty: indexing the "
                "bundled snapshot instead",
                job.source,
                run.message,
            )
            note = f"the docs site could not be crawled ({run.message}); indexed the bundled snapshot instead"
            fallback = SnapshotSource(self.fallback_source, self.settings.docs_public_base_url)
            run = await self.indexer.run(fallback, trigger=job.trigger, progress=job.tracker, note=note)
        self._ready = False  # re-open (and re-load) on next search
        self.retriever.forget_vocabulary()
        return run

    async def _has_pages(self) -> bool:
        def read() -> bool:
            return self.store.open() and bool(self.store.page_hashes())

        return await asyncio.to_thread(read)

    def last_run(self) -> IndexRun | None:
        """The latest finished run record (`docsbot status`, `/reindex status`)."""
        return self.runs.last()

    async def status(self) -> IndexStatus:
        def read() -> tuple[int, int]:
            if not self.store.open():
                return 0, 0
            return len(self.store.page_hashes()), self.store.count_chunks()

        pages, chunks = await asyncio.to_thread(read)
        return IndexStatus(
            uri=self.settings.milvus_uri,
            collection=self.settings.collection,
            embedding_model=self.settings.embedding_model,
            pages=pages,
            chunks=chunks,
            hybrid=self.store.has_sparse,
            last_run=self.runs.last(),
        )


def chat_sentence(exc: DocsBotError) -> str:
    """The one sentence a chat user sees for an error: the class's fixed sentence, never the
    exception's own text (paths, hosts and library messages go to the log only)."""
    sentence = getattr(type(exc), "user_message", None)
    return sentence if isinstance(sentence, str) else DocsBotError.user_message


def _sources(retrieval: Retrieval, count: int) -> tuple[Source, ...]:
    return tuple(
        Source(n, hit.chunk.title, hit.chunk.heading, hit.chunk.url)
        for n, hit in enumerate(retrieval.hits[:count], start=1)
    )


@contextlib.asynccontextmanager
async def open_service(
    settings: Settings,
    embedder: Embedder | None = None,
    llm: ChatLLM | None = None,
    *,
    generation: bool = True,
    store: ChunkStore | None = None,
) -> AsyncIterator[RagService]:
    """Build the service from settings; every resource is closed in reverse order on exit.
    `store`: use this one instead of connecting now (`docsbot serve` passes one whose Milvus
    client connects in the background); it is closed on exit too."""
    async with contextlib.AsyncExitStack() as stack:
        if store is None:
            store = await asyncio.to_thread(
                ChunkStore.connect,
                settings.milvus_uri,
                settings.collection,
                settings.milvus_token.get_secret_value(),
                settings.milvus_timeout,
            )
        stack.callback(store.close)
        if embedder is None:
            cached, cache = await asyncio.to_thread(build_embedder, settings)
            embedder = cached
            if cache is not None:
                stack.callback(cache.close)
        if llm is None and generation:
            llm = OpenAIChatLLM(
                settings.llm_base_url,
                settings.llm_model,
                settings.llm_api_key.get_secret_value(),
                temperature=settings.llm_temperature,
                top_p=settings.llm_top_p,
                max_tokens=settings.llm_max_tokens,
                timeout=settings.llm_timeout,
                max_retries=settings.llm_max_retries,
                concurrency=settings.llm_concurrency,
                queue_timeout=settings.llm_queue_timeout,
            )
            stack.push_async_callback(llm.close)
        service = RagService(settings, store, embedder, llm)
        stack.push_async_callback(service.stop_reindex, settings.shutdown_grace)  # before the store closes
        yield service
