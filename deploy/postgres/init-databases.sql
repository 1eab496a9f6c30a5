-- One database per service (each service owns its own event store and read models).
-- Run once by the postgres image's entrypoint from /docker-entrypoint-initdb.d, as the
-- POSTGRES_USER from docker-compose.yml (aidtrail), which therefore owns them.
CREATE DATABASE aidtrail_pledge;
CREATE DATABASE aidtrail_warehouse;
CREATE DATABASE aidtrail_dispatch;
CREATE DATABASE aidtrail_recipient;
CREATE DATABASE aidtrail_audit;
