-- +goose Up
CREATE TABLE patient (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hospital_id bigint NOT NULL REFERENCES hospital (id) ON DELETE CASCADE,
    name        text NOT NULL
);
CREATE INDEX patient_hospital_idx ON patient (hospital_id);

-- +goose Down
DROP TABLE patient;
