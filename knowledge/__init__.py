"""Knowledge store: find the files an issue is about, and remember what reviewers decided.

Entry points (import from the submodules; this package imports nothing heavy):
`knowledge.service.KnowledgeService` bundles the rest; `knowledge.context` holds what agents
receive (`RetrievedContext`, `Retriever`, `NullRetriever`); `knowledge.cli.make_knowledge_cli`
builds the `knowledge` sub-command.
"""
