-- +goose Up
-- Written by the example's background job (jobs.go), in the tenant's
-- database, after a hospital is added.
CREATE TABLE hospital_event (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hospital_id bigint NOT NULL,
    kind        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE hospital_event;
