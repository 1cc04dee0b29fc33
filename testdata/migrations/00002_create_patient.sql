-- +goose Up
CREATE TABLE patient (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hospital_id bigint NOT NULL REFERENCES hospital (id),
    name        text NOT NULL
);

-- +goose Down
DROP TABLE patient;
