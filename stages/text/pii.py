"""`PiiModifier`: find personal data and secrets in text, and replace, remove or drop them.

Measured against Presidio's pattern recognisers (`benchmarks/pii.py --sides presidio`,
figures in benchmarks/README.md): they have nothing for URL credentials or secrets, on the
planted test corpus their precision is 0.27 to 0.78 for phone, IP, e-mail and card (order
numbers, ISBNs, versions, timestamps taken for PII; 2-series Mastercards missed) against
our 1.000, and they take about 140x our CPU time per document, so we keep our detectors.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, text_column
from stages.text.pii_patterns import ENTITY_TYPES, PHONE_LENIENCIES, PiiDetector

Action = Literal["replace", "redact", "drop"]
ACTIONS: tuple[str, ...] = ("replace", "redact", "drop")
SCAN_ERROR = "SCAN_ERROR"  # the count of documents the detectors failed on (dropped)


class PiiModifier(Filter):
    """Finds PII in `text_field` (e-mail addresses, phone numbers, IP addresses, credit
    card numbers, IBANs, US SSNs, credentials in URLs, API keys and private keys: the
    types and their rules are `stages.text.pii_patterns.PiiDetector`'s) and acts on each
    entity by its type's action:

    - "replace" (default): the entity becomes its type tag, `<EMAIL_ADDRESS>`;
    - "redact": the entity's characters are removed (Presidio's "redact"), so
      "mail me at a@b.com today" becomes "mail me at  today";
    - "drop": the whole document is removed (counted as removed by this stage).

    A document the detectors raise on is dropped too, not passed on unread (counted as
    `SCAN_ERROR`, the error as the reason in the report's sample).

    Keep rule: a document is kept unless it holds an entity whose action is "drop"; the
    kept documents come out with their entities replaced or redacted, and a document
    without PII comes out unchanged, byte for byte. Null and empty texts are kept as they
    are. The score (`keep_score=True` keeps it as `score_<name>`) is the number of
    entities found in the document; `score_only=True` keeps every row with its text
    unchanged and only scores.

    `supported_entities` (default: every type) limits what is looked for;
    `anonymize_action` is the action of every type and `policy` overrides it per type
    (`{"SECRET": "drop", "EMAIL_ADDRESS": "redact"}`). `phone_region` is the region
    assumed for phone numbers written without a country code, and `phone_leniency`
    libphonenumber's leniency ("valid": a valid number of its region).
    `take_counts()` returns the entities found per type since its last call.

    The interface follows NeMo Curator's `PiiModifier` (`supported_entities`,
    `anonymize_action`; Presidio's type names and `<TYPE>` tags); the detection is ours:
    regular expressions confirmed by checksums and libphonenumber, no NER model, so names
    and street addresses are not found. Because it rewrites text, the stage runs as a
    stage of its own: inside a `FilterChain` (which only asks filters for keep masks) it
    refuses to run unless every action is "drop" or it only scores.
    """

    def __init__(
        self,
        supported_entities: list[str] | None = None,
        anonymize_action: Action = "replace",
        policy: dict[str, Action] | None = None,
        text_field: str = "text",
        phone_region: str = "US",
        phone_leniency: str = "valid",
        keep_score: bool = False,
        score_only: bool = False,
    ):
        name = type(self).__name__
        entities = list(ENTITY_TYPES if supported_entities is None else supported_entities)
        unknown = [e for e in entities if e not in ENTITY_TYPES]
        if unknown:
            raise ValueError(
                f"{name}: supported_entities has unknown types {unknown}; "
                f"known: {list(ENTITY_TYPES)}"
            )
        if not entities:
            raise ValueError(f"{name}: supported_entities is empty")
        if anonymize_action not in ACTIONS:
            raise ValueError(
                f"{name}: anonymize_action {anonymize_action!r}: expected one of {ACTIONS}"
            )
        policy = dict(policy or {})
        for entity, action in policy.items():
            if entity not in entities:
                raise ValueError(
                    f"{name}: policy names {entity!r}, which is not among the supported "
                    f"entities {entities}"
                )
            if action not in ACTIONS:
                raise ValueError(
                    f"{name}: policy[{entity!r}] is {action!r}: expected one of {ACTIONS}"
                )
        if phone_leniency not in PHONE_LENIENCIES:
            raise ValueError(
                f"{name}: phone_leniency {phone_leniency!r}: expected one of {PHONE_LENIENCIES}"
            )
        import phonenumbers

        if phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{name}: phone_region {phone_region!r} is not a known region")
        self.supported_entities = entities
        self.anonymize_action = anonymize_action
        self.policy = policy
        self.text_field = text_field
        self.phone_region = phone_region
        self.phone_leniency = phone_leniency
        self.keep_score = keep_score
        self.score_only = score_only
        self.actions = {e: policy.get(e, anonymize_action) for e in entities}
        self._detector: PiiDetector | None = None
        self._counts: dict[str, int] = {}
        self._errors: dict[str, str] = {}  # text -> why its scan failed, for the report

    def setup(self) -> None:
        if self._detector is None:
            self._detector = PiiDetector(
                self.supported_entities, self.phone_region, self.phone_leniency
            )

    def __getstate__(self) -> dict:
        # Workers compile their own patterns in `setup`; found counts stay with each worker.
        return {**self.__dict__, "_detector": None, "_counts": {}, "_errors": {}}

    # ------------------------------------------------------------------ the filter contract

    def score(self, batch: pa.Table) -> np.ndarray:
        """The number of PII entities in each document (0 for null and empty texts)."""
        return self._scan(batch, count=False)[0]

    def keep(self, scores: np.ndarray) -> np.ndarray:
        """The keep mask from scores alone, which only exists when every type's action is
        "drop" (keep documents without PII); otherwise the decision needs the types found,
        which `apply` has."""
        if all(a == "drop" for a in self.actions.values()):
            return np.asarray(scores) == 0
        raise TypeError(
            f"{self.stage_name}: scores alone do not decide which documents to drop when "
            "some types are replaced or redacted; use apply()"
        )

    def mask(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        rewrites = sorted(e for e, a in self.actions.items() if a != "drop")
        if rewrites and not self.score_only:
            raise TypeError(
                f"{self.stage_name} rewrites text ({', '.join(rewrites)}): run it as a stage "
                "of its own, not inside a FilterChain"
            )
        scores, dropped, _ = self._scan(batch)
        return scores, ~dropped

    def apply(self, batch: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray]:
        """Kept rows (their PII replaced or redacted), removed rows (as they came in) and
        the entity count of every row."""
        scores, dropped, rewritten = self._scan(batch)
        if rewritten and not self.score_only:
            column = text_column(batch, self.text_field, self.stage_name)
            rows = sorted(rewritten)
            changed = np.zeros(batch.num_rows, dtype=bool)
            changed[rows] = True
            new = pa.array([rewritten[i] for i in rows], column.type)
            column = pc.replace_with_mask(column, pa.array(changed), new)
            index = batch.schema.get_field_index(self.text_field)
            batch = batch.set_column(index, self.text_field, column)
        if self.keep_score or self.score_only:
            if self.score_column in batch.column_names:
                batch = batch.drop_columns([self.score_column])
            batch = batch.append_column(self.score_column, pa.array(scores))
        if self.score_only or not dropped.any():
            return batch, batch.slice(0, 0), scores
        keep = pa.array(~dropped)
        return batch.filter(keep), batch.filter(pa.array(dropped)), scores

    def take_counts(self) -> dict[str, int]:
        """Entities found per type (`{"EMAIL_ADDRESS": 3, ...}`, types found at least
        once) since the last call, in dropped documents too, and `SCAN_ERROR`: documents
        the detectors raised on (dropped rather than passed on unread); then starts again
        from zero."""
        counts, self._counts, self._errors = self._counts, {}, {}
        return counts

    def kept_removed(self, rows: pa.Table) -> pa.Table:
        """Dropped documents as `--keep-removed` stores them: every entity found replaced
        by its type tag, a document the scan failed on without its text, so the removed
        rows do not keep the data the stage was asked to remove."""
        self.setup()
        texts = text_column(rows, self.text_field, self.stage_name).to_pylist()
        for i, text in enumerate(texts):
            if text in self._errors:
                texts[i] = None
            elif text:
                texts[i] = _rewrite(
                    text, self._detector.find(text), dict.fromkeys(self.actions, "replace")
                )
        index = rows.schema.get_field_index(self.text_field)
        return rows.set_column(index, self.text_field, pa.array(texts, rows.column(index).type))

    def describe_removed(self, rows: pa.Table, limit: int) -> list[dict]:
        """The report's sample of dropped documents, with their PII replaced by type tags
        (a report must not carry the data the stage removed) and the types as the reason."""
        self.setup()
        rows = rows.slice(0, max(limit, 0))
        texts = text_column(rows, self.text_field, self.stage_name).to_pylist()
        reasons = []
        for i, text in enumerate(texts):
            if text in self._errors:
                texts[i] = None  # unread, so nothing of it goes into the report
                reasons.append(f"PII scan failed: {self._errors[text]}")
                continue
            spans = self._detector.find(text) if text else []
            texts[i] = _rewrite(text, spans, {e: "replace" for e in self.actions})
            reasons.append("PII: " + ", ".join(sorted({e for _, _, e in spans})))
        index = rows.schema.get_field_index(self.text_field)
        column = rows.column(index)
        rows = rows.set_column(index, self.text_field, pa.array(texts, column.type))
        samples = super().describe_removed(rows, limit)
        for sample, reason in zip(samples, reasons, strict=False):
            sample["reason"] = reason
        return samples

    # ------------------------------------------------------------------ the work

    def _scan(
        self, batch: pa.Table, count: bool = True
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Per row: the number of entities and whether an entity's action drops the row;
        and the new text of each row whose text changes (kept rows with PII). `count`
        adds the entities found to what `take_counts` returns."""
        self.setup()
        detector = self._detector
        column = text_column(batch, self.text_field, self.stage_name)
        scores = np.zeros(batch.num_rows, dtype=np.float64)
        dropped = np.zeros(batch.num_rows, dtype=bool)
        rewritten: dict[int, str] = {}
        if not batch.num_rows:
            return scores, dropped, rewritten
        gates = detector.gates(column)
        rows = np.flatnonzero(gates.any(axis=1))
        texts = column.take(pa.array(rows, pa.int64())).to_pylist()
        types_of: dict[bytes, tuple[str, ...]] = {}  # the types a row's gates let through
        actions = self.actions
        counts = self._counts if count else {}
        for i, text in zip(rows.tolist(), texts, strict=True):
            gate = gates[i]
            key = gate.tobytes()
            types = types_of.get(key)
            if types is None:
                types = types_of[key] = tuple(
                    e for e, g in zip(detector.entities, gate, strict=True) if g
                )
            try:
                spans = detector.find(text, types)
            except Exception as error:  # fail closed: never pass a document on unread
                dropped[i] = True
                counts[SCAN_ERROR] = counts.get(SCAN_ERROR, 0) + 1
                self._errors[text] = f"{type(error).__name__}: {error}"
                continue
            if not spans:
                continue
            scores[i] = len(spans)
            for _, _, entity in spans:
                counts[entity] = counts.get(entity, 0) + 1
            if any(actions[entity] == "drop" for _, _, entity in spans):
                dropped[i] = True
            elif not self.score_only:
                rewritten[i] = _rewrite(text, spans, actions)
        return scores, dropped, rewritten


def _rewrite(text: str | None, spans: list[tuple[int, int, str]], actions: dict[str, str]):
    """`text` with each span replaced by its type tag or removed, by its type's action."""
    if not spans:
        return text
    parts, position = [], 0
    for start, end, entity in spans:
        parts.append(text[position:start])
        if actions[entity] == "replace":
            parts.append(f"<{entity}>")
        position = end
    parts.append(text[position:])
    return "".join(parts)
