"""Synthetic training queries after CADET (Tamber et al., arXiv 2505.19274).

CADET samples passages of a corpus, asks an instruction LLM for six types of query per passage
(question, claim, title, keywords, zero-shot and few-shot user queries) and keeps a query only when
its source passage comes first after retrieval and reranking. Here:

- :mod:`harness.synthesis.prompts`: the query types, their prompt templates (files in ``prompts/``)
  and the checks a config gets before any job runs;
- :mod:`harness.synthesis.generate`: passage sampling, per-passage seeds, the transformers and vLLM
  backends, chunked generation that resumes, and the checks on each generation;
- :mod:`harness.synthesis.filter`: CADET's filter (a retriever's top results, reranked by the teacher).

The ``synthesize`` stage (:mod:`harness.stages.synthesize`) ties them into an ordinary prepared dataset.
"""
