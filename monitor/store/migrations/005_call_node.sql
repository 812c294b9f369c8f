-- 005: which node runs each call. Several `monitor serve` nodes may share one PostgreSQL database:
-- the node whose audit writer records a call's state is written here, and a node starting again
-- marks only its own calls interrupted. NULL: no node named (one server on a SQLite file).

ALTER TABLE calls ADD COLUMN node TEXT;
