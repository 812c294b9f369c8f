-- 003: reserved for another branch (numbers 002 and 003 are taken). This file only keeps the
-- numbering whole on the family branch; the lead drops it when merging the branch that owns 003.
SELECT 1;
