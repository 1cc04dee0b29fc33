-- +goose Up
CREATE TABLE visit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id bigint NOT NULL REFERENCES patient (id),
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX visit_patient_idx ON visit (patient_id);

-- +goose Down
DROP TABLE visit;
