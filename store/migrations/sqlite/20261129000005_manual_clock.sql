-- The manual clock (`serve --clock manual`): where it stands, so a restart
-- resumes there instead of jumping back to the real time. One row.
CREATE TABLE manual_clock
(
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    now TEXT NOT NULL
);
