-- +goose Up
CREATE UNIQUE INDEX hospital_name_idx ON hospital (name);

-- +goose Down
DROP INDEX hospital_name_idx;
