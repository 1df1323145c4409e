-- Run once by the postgres image, on the first start with an empty data volume
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml), as the superuser.
--
-- Two roles, each owning only its own databases:
--   temporal  may create databases: the temporal-admin-tools job creates and migrates
--             `temporal` and `temporal_visibility` with temporal-sql-tool.
--   orderly   owns the `orderly` database; the `migrate` job applies alembic migrations.
-- The passwords match docker-compose.yml; change both together.

CREATE ROLE temporal WITH LOGIN CREATEDB PASSWORD 'temporal';

CREATE ROLE orderly WITH LOGIN PASSWORD 'orderly';
CREATE DATABASE orderly OWNER orderly;
