-- ontovec vector store in PostgreSQL + pgvector, schema version 1.
-- Run by ontovec itself (src/search/vector_store/postgres.rs) on first use, inside a transaction
-- holding an advisory lock; never edit a released file: add 0002_*.sql.
--
-- Citus: `ontovec_schema` and `ontovec_vector_models` are small; make them reference tables
-- (SELECT create_reference_table('ontovec_vector_models')). Each per-model table has its
-- distribution column in its primary key and no foreign keys, so
-- SELECT create_distributed_table('<table>', 'term_id') works. (Not tested: Citus is not
-- installable on the machines this was written on.)
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS ontovec_schema (
    component text PRIMARY KEY,
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS ontovec_vector_models (
    model text PRIMARY KEY,          -- the terms model's folder name
    table_name text NOT NULL,        -- its vector table (created per model, see below)
    dim integer NOT NULL,
    scalar text NOT NULL,            -- 'vector' (f32) or 'halfvec' (f16)
    seq bigint NOT NULL DEFAULT 0,   -- store sequence of the last completed catch-up
    rids bigint[] NOT NULL DEFAULT '{}'  -- releases whose vectors are all in the table
);
-- Per model (created on first use with the model's dimension and the configured HNSW params):
--   CREATE TABLE <t> (term_id bigint PRIMARY KEY, rid bigint NOT NULL, embedding vector(<dim>) NOT NULL);
--   CREATE INDEX <t>_rid ON <t> (rid);
--   CREATE INDEX <t>_hnsw ON <t> USING hnsw (embedding vector_cosine_ops) WITH (m = <m>, ef_construction = <ef>);
