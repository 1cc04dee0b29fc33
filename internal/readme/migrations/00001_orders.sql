-- The migrations the README's snippets embed (//go:embed migrations/*.sql).

-- +goose Up
CREATE TABLE orders (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    total numeric NOT NULL DEFAULT 0
);
CREATE TABLE items (
    name text NOT NULL,
    qty  int  NOT NULL
);

-- +goose Down
DROP TABLE items;
DROP TABLE orders;
