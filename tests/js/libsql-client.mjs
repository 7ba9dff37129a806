// Drives the origin's Hrana endpoint with npm @libsql/client (its fetch-based
// "web" entry point) and prints what it read as one JSON line.
import { createClient } from "@libsql/client/web";

const client = createClient({ url: process.env.HRANA_URL, authToken: process.env.HRANA_TOKEN });

await client.execute("CREATE TABLE js (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n REAL, b BLOB)");
await client.execute({
  sql: "INSERT INTO js (name, n, b) VALUES (?, ?, ?)",
  args: ["ada", 1.5, new Uint8Array([1, 2, 255])],
});
await client.execute({ sql: "INSERT INTO js (name) VALUES (:name)", args: { name: "bob" } });
await client.batch(
  ["INSERT INTO js (name) VALUES ('c')", "INSERT INTO js (name) VALUES ('d')"],
  "write",
);

const rolledBack = await client.transaction("write");
await rolledBack.execute("INSERT INTO js (name) VALUES ('rolled-back')");
await rolledBack.rollback();
const kept = await client.transaction("write");
await kept.execute("INSERT INTO js (name) VALUES ('kept')");
await kept.commit();

const rs = await client.execute("SELECT group_concat(name, ',') AS names, count(*) AS n FROM js");
const blob = await client.execute("SELECT n, b FROM js WHERE name = 'ada'");

let error = null;
try {
  await client.execute("SELECT * FROM no_such_table");
} catch (e) {
  error = String(e.message ?? e);
}

console.log(JSON.stringify({
  names: rs.rows[0].names,
  count: Number(rs.rows[0].n),
  n: blob.rows[0].n,
  blob: Array.from(new Uint8Array(blob.rows[0].b)),
  error,
}));
client.close();
