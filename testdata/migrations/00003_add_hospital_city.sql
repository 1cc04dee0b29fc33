-- +goose Up
ALTER TABLE hospital ADD COLUMN city text;

-- +goose Down
ALTER TABLE hospital DROP COLUMN city;
