"""The built-in quickstart collection, generated deterministically from a seed.

The collection is a small encyclopedia of invented places (``the Harrowmere abbey``, ``the
Harrowmoor bridge``, ...). Each entity has a handful of facts ``(entity, relation, value)``; each
passage (at most ~50 words) states one fact in its main sentence and mentions one or two more
facts of the same entity, or a vague remark, in the following sentences. A query asks for one
fact with paraphrased wording (synonyms, reordering, partial overlap), so lexical overlap alone
does not find the answer. Graded relevance of a passage to the query for ``(e, r)``:

- 3: its main sentence states ``(e, r)``;
- 2: a secondary sentence states ``(e, r)``;
- 1: a sentence mentions the relation of ``e`` vaguely, without the value.

Hard distractors share words with the positives: the entity's other passages (same name), the
passages of entities with the same name or a near-identical name, and passages stating the same
relation (or a confusable one: founder / architect / namesake) for another entity.

Entities are split between train, dev and test, so evaluation queries ask about unseen entities.
Everything is drawn from one :class:`random.Random` seeded with ``seed`` and iterated in list
order, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.data.format import TrainGroup, write_corpus, write_qrels, write_queries, write_train_groups

SPLITS = ("train", "dev", "test")

PREFIXES = ["Ash", "Bram", "Cold", "Dun", "Elder", "Fen", "Glen", "Harrow", "Ivy", "Kel", "Lark", "Marl",
            "North", "Oak", "Pen", "Quarry", "Raven", "Salt", "Thorn", "Upton", "Vale", "Wester", "Yar",
            "Brook", "Crane", "Drift", "Fox", "Gull", "Heron", "Kings", "Mill", "Stone"]
SUFFIXES = ["ford", "mere", "wick", "moor", "by", "ton", "field", "combe", "haven", "stead", "bury", "holt",
            "gate", "dale", "well", "marsh"]
KINDS = {"abbey": "priory", "bridge": "crossing", "guild hall": "meeting house", "lighthouse": "light station",
         "market": "trading hall", "orchard": "fruit grove", "observatory": "telescope house", "mill": "grinding works",
         "library": "reading rooms", "harbour": "quay", "theatre": "playhouse", "brewery": "alehouse",
         "castle": "keep", "museum": "collection", "chapel": "oratory", "school": "academy"}
FIRST = ["Alia", "Bertram", "Cora", "Dmitri", "Edith", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Klara",
         "Lionel", "Mira", "Nils", "Odile", "Piers", "Rosa", "Silas", "Tamsin", "Ulric", "Vera", "Wendel"]
LAST = ["Tern", "Vask", "Holloway", "Brandt", "Quill", "Marsh", "Okafor", "Lindqvist", "Pereira", "Achebe",
        "Draycott", "Fenwick", "Gallo", "Haldane", "Ivers", "Kowal", "Lestrange", "Moreau", "Nakamura"]
MATERIALS = ["red sandstone", "oak timber", "grey granite", "pale limestone", "yellow brick", "river flint",
             "black basalt", "cedar planks", "slate and lime mortar", "cast iron"]
SPECIALTIES = ["pear cider", "woven blankets", "copper lanterns", "star charts", "honey cakes", "painted tiles",
               "choral music", "rare maps", "smoked trout", "glass beads", "puppet shows", "herb gardens"]
DISASTERS = ["a great flood", "a fire", "an earthquake", "a winter storm", "a cannon bombardment",
             "a lightning strike", "a landslide", "a plague outbreak"]
OWNERS = ["the town council", "a monastic order", "a private trust", "the county archive", "a merchant company",
          "a charitable society", "the national heritage board", "a workers' cooperative"]
LANDMARKS = ["the old toll road", "a ruined windmill", "the cathedral square", "a limestone quarry",
             "the railway viaduct", "a salt marsh", "the royal forest", "a standing stone circle"]
REGIONS = ["valley", "county", "coast", "uplands", "district", "lowlands"]


@dataclass(frozen=True)
class Relation:
    """A fact type: how passages state it, how they mention it vaguely, and how queries ask for it."""

    name: str
    states: tuple[str, ...]
    vague: tuple[str, ...]
    asks: tuple[str, ...]


RELATIONS = [
    Relation("founder",
             ("{E} was founded by {V}.", "{V} established {E}.", "{E} owes its beginnings to {V}."),
             ("Nobody agrees on who first set up {E}.",),
             ("who is credited with starting {E}", "person behind {E}", "{E} started by", "who began {E}")),
    Relation("architect",
             ("{E} was designed by the architect {V}.", "The plans for {E} were drawn by {V}."),
             ("The design of {E} is credited to several hands.",),
             ("{E} blueprint author", "whose drawings was {E} built from", "which architect planned {E}")),
    Relation("namesake",
             ("{E} takes its name from {V}.", "{E} was named in honour of {V}."),
             ("The origin of the name {E} is uncertain.",),
             ("{E} name origin", "where does the name of {E} come from", "who is {E} named for")),
    Relation("opened",
             ("{E} opened in {V}.", "Work on {E} was completed in {V}.", "{E} first received visitors in {V}."),
             ("The opening date of {E} was lost in the archives.",),
             ("how old is {E}", "since when has {E} existed", "{E} opening year")),
    Relation("restored",
             ("{E} was restored in {V}.", "A careful restoration of {E} ended in {V}."),
             ("{E} has been repaired more than once.",),
             ("latest refurbishment of {E}", "when was {E} last fixed up", "{E} renovation date")),
    Relation("location",
             ("{E} lies in {V}.", "{E} is situated in {V}.", "You will find {E} in {V}."),
             ("{E} is a little hard to find on older maps.",),
             ("how to get to {E}", "{E} region", "which area is {E} in")),
    Relation("near",
             ("{E} stands next to {V}.", "{V} is a short walk from {E}."),
             ("Several sights surround {E}.",),
             ("{E} surroundings", "what's nearby {E}", "landmarks beside {E}")),
    Relation("material",
             ("{E} is built of {V}.", "The walls of {E} are made from {V}."),
             ("The building stone of {E} has weathered badly.",),
             ("{E} stonework", "what kind of stone or wood is {E}", "{E} building materials")),
    Relation("specialty",
             ("{E} is famous for its {V}.", "Visitors come to {E} for the {V}."),
             ("{E} has a reputation that draws travellers.",),
             ("{E} famous product", "what to buy at {E}", "why do tourists go to {E}")),
    Relation("disaster",
             ("{E} was badly damaged by {V}.", "{V} almost destroyed {E}."),
             ("{E} has survived hard times.",),
             ("{E} history tragedy", "what calamity befell {E}", "what ruined {E}")),
    Relation("owner",
             ("{E} is run by {V}.", "{V} manages {E} today."),
             ("Control of {E} has changed hands over the years.",),
             ("{E} proprietor", "who owns {E}", "who is in charge of {E}")),
    Relation("visitors",
             ("{E} welcomes about {V} visitors each year.", "Roughly {V} people tour {E} annually."),
             ("{E} is busiest in the summer.",),
             ("how popular is {E}", "{E} footfall", "annual tourist numbers at {E}")),
]
FILLERS = ["It is a popular stop for walkers.", "Local guides tell many stories about it.",
           "Its records are kept in the parish office.", "Photographs of it appear on postcards.",
           "The path to it is steep in places.", "Schoolchildren often visit it on trips."]


def _value(rng: random.Random, relation: str, names: list[str]) -> str:
    person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    values = {
        "founder": person, "architect": person,
        "namesake": rng.choice([person, f"the {rng.choice(names)} family", f"Saint {rng.choice(FIRST)}"]),
        "opened": str(rng.randint(1420, 1890)), "restored": str(rng.randint(1900, 2015)),
        "location": f"the {rng.choice(names)} {rng.choice(REGIONS)}", "near": rng.choice(LANDMARKS),
        "material": rng.choice(MATERIALS), "specialty": rng.choice(SPECIALTIES),
        "disaster": rng.choice(DISASTERS), "owner": rng.choice(OWNERS),
        "visitors": f"{rng.randint(2, 95) * 1000:,}",
    }
    return values[relation]


@dataclass
class _Entity:
    stem: str
    kind: str
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"the {self.stem} {self.kind}"

    def alias(self, rng: random.Random) -> str:
        """How a query names the entity: often the kind's synonym, often without the article."""
        kind = KINDS[self.kind] if rng.random() < 0.9 else self.kind
        return f"{'the ' if rng.random() < 0.5 else ''}{self.stem} {kind}"


def _entities(rng: random.Random, count: int, siblings: int) -> list[_Entity]:
    """``count`` entities in families that share a name prefix and a set of kinds: ``the Ashford
    mill``, ``the Ashford abbey``, ``the Ashmere mill``, ... (``siblings`` names × ``siblings`` kinds).
    A family draws its facts from the same six relations, so its passages compete for the same
    queries."""
    capacity = len(PREFIXES) * (len(SUFFIXES) // siblings) * siblings * siblings
    if not 1 <= siblings <= len(KINDS):
        raise ConfigError(f"expected 1 to {len(KINDS)}", "siblings")
    if count > capacity:
        raise ConfigError(f"at most {capacity} entities (docs / docs_per_entity) with {siblings} siblings", "docs")
    names = [p + s for p in PREFIXES for s in SUFFIXES]
    suffixes = {prefix: rng.sample(SUFFIXES, len(SUFFIXES)) for prefix in PREFIXES}
    entities: list[_Entity] = []
    for round_ in range(len(SUFFIXES) // siblings):
        prefixes = list(PREFIXES)
        rng.shuffle(prefixes)
        for prefix in prefixes:
            if len(entities) >= count:
                break
            shared = rng.sample(RELATIONS, 6)
            kinds = rng.sample(list(KINDS), siblings)
            for suffix in suffixes[prefix][round_ * siblings: (round_ + 1) * siblings]:
                for kind in kinds:
                    entity = _Entity(prefix + suffix, kind)
                    for rel in rng.sample(shared, 5):
                        entity.facts[rel.name] = _value(rng, rel.name, names)
                    entities.append(entity)
    return entities[:count]


def _capital(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


@dataclass
class _Passage:
    entity: int
    title: str
    text: str
    grades: dict[str, int]
    """``{relation of the passage's entity: grade}``; the first key is the main sentence's."""


def _passages(rng: random.Random, entities: list[_Entity], docs: int) -> list[_Passage]:
    """``docs`` passages, cycling over the entities; each one's main fact cycles over the entity's facts."""
    relations = {r.name: r for r in RELATIONS}
    passages = []
    for index in range(docs):
        e = index % len(entities)
        entity = entities[e]
        facts = list(entity.facts)
        main = facts[(index // len(entities)) % len(facts)]
        grades = {main: 3}
        sentences = [rng.choice(relations[main].states).format(E=entity.name, V=entity.facts[main])]
        for _ in range(rng.randint(1, 2)):
            other = rng.choice(facts)
            kind = rng.random()
            if other in grades or kind < 0.25:
                sentences.append(rng.choice(FILLERS))
            elif kind < 0.7:
                sentences.append(rng.choice(relations[other].states).format(E="it", V=entity.facts[other]))
                grades[other] = 2
            else:
                sentences.append(rng.choice(relations[other].vague).format(E=entity.name))
                grades[other] = 1
        passages.append(_Passage(e, _capital(entity.name), " ".join(_capital(s) for s in sentences), grades))
    return passages


def generate(out: Path, seed: int = 13, docs: int = 3000, train_queries: int = 600, dev_queries: int = 100,
             test_queries: int = 200, hard_negatives: int = 7, docs_per_entity: int = 10,
             siblings: int = 5) -> tuple[dict[str, Any], dict[str, int]]:
    """Write the generated collection into ``out``; return the source record for ``meta.json`` and
    its warnings (none)."""
    if docs_per_entity < 1 or docs < 3 * docs_per_entity:
        raise ConfigError("need at least 3 × docs_per_entity documents (one entity per split)", "docs")
    rng = random.Random(seed)
    n_entities = docs // docs_per_entity
    entities = _entities(rng, n_entities, siblings)
    relations = {r.name: r for r in RELATIONS}
    passages = _passages(rng, entities, docs)
    order = list(range(docs))
    rng.shuffle(order)
    doc_ids = [""] * docs
    for rank, p in enumerate(order):
        doc_ids[p] = f"d{rank}"

    relevant: dict[tuple[int, str], dict[str, int]] = {}  # (entity, relation) -> {doc id: grade}
    by_entity: dict[int, list[str]] = {}
    by_relation: dict[str, list[str]] = {}  # main relation -> doc ids
    for p, passage in enumerate(passages):
        for relation, grade in passage.grades.items():
            relevant.setdefault((passage.entity, relation), {})[doc_ids[p]] = grade
        by_entity.setdefault(passage.entity, []).append(doc_ids[p])
        by_relation.setdefault(next(iter(passage.grades)), []).append(doc_ids[p])
    family: dict[str, list[int]] = {}
    for e, entity in enumerate(entities):
        family.setdefault(entity.stem, []).append(e)

    def negatives(e: int, relation: str, judged: dict[str, int]) -> list[str]:
        """Two thirds from the entity's and its same-name siblings' passages, the rest stating the relation."""
        own_first = [e] + [other for other in family[entities[e].stem] if other != e]
        pool = [d for sibling in own_first for d in by_entity.get(sibling, []) if d not in judged]
        rng.shuffle(pool)
        same = by_relation.get(relation, [])
        extra = [d for d in rng.sample(same, min(len(same), 4 * hard_negatives)) if d not in judged and d not in pool]
        return (pool[: hard_negatives - hard_negatives // 3] + extra)[:hard_negatives]

    quotas = dict(zip(SPLITS, (train_queries, dev_queries, test_queries)))
    entity_order = list(range(n_entities))
    rng.shuffle(entity_order)
    total = sum(quotas.values())
    n_train = min(max(1, round(n_entities * train_queries / total)), n_entities - 2)
    n_dev = min(max(1, round(n_entities * dev_queries / total)), n_entities - n_train - 1)
    shares = [entity_order[:n_train], entity_order[n_train: n_train + n_dev], entity_order[n_train + n_dev:]]
    queries: list[tuple[str, str, None]] = []
    qrels: dict[str, dict[str, dict[str, int]]] = {split: {} for split in quotas}
    groups: list[TrainGroup] = []
    for (split, quota), share in zip(quotas.items(), shares):
        candidates = [(e, r) for e in share for r in entities[e].facts
                      if max(relevant.get((e, r), {}).values(), default=0) >= 2]
        for e, r in sorted(rng.sample(candidates, min(quota, len(candidates)))):
            qid = f"q{len(queries)}"
            text = rng.choice(relations[r].asks).format(E=entities[e].alias(rng))
            queries.append((qid, text + ("?" if rng.random() < 0.5 else ""), None))
            judged = dict(sorted(relevant[(e, r)].items(), key=lambda kv: (-kv[1], kv[0])))
            qrels[split][qid] = judged
            if split == "train":
                positives = [d for d, g in judged.items() if g >= 2]
                groups.append(TrainGroup(qid, positives, negatives(e, r, judged), {d: judged[d] for d in positives}))

    write_corpus(out / "corpus.jsonl", ((doc_ids[p], passages[p].title, passages[p].text) for p in order))
    write_queries(out / "queries.jsonl", queries)
    for split, split_qrels in qrels.items():
        write_qrels(out / "qrels" / f"{split}.tsv", split_qrels)
    write_train_groups(out / "train.jsonl", groups)
    return {"name": "generated", "seed": seed, "docs": docs, "train_queries": train_queries,
            "dev_queries": dev_queries, "test_queries": test_queries, "hard_negatives": hard_negatives,
            "docs_per_entity": docs_per_entity, "siblings": siblings}, {}
