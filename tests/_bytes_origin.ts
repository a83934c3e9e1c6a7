// An HTTP origin for the inspector's memory test, in a process of its own so
// that its buffers are not in the test's figures: `POST /up` reads the body
// and answers with the byte count; `GET /down?size=N` answers N bytes of
// lower-case letters; `GET /count` (asked directly, not through the tunnel)
// answers {received, sent} in body bytes. Prints {"port": N} on stdout once
// it listens, and runs until killed.
//
//   deno run --allow-net tests/_bytes_origin.ts

/** Letters, so that a recorded body comes back from the API as text. */
const PATTERN = Uint8Array.from({ length: 1024 * 1024 }, (_, i) => 97 + (i % 26));
let received = 0;
let sent = 0;

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(JSON.stringify({ port })),
}, async (req) => {
  const url = new URL(req.url);
  if (url.pathname === "/up" && req.method === "POST") {
    let n = 0;
    for await (const chunk of req.body ?? []) n += chunk.length;
    received += n;
    return new Response(String(n));
  }
  if (url.pathname === "/down") {
    const size = Math.min(Number(url.searchParams.get("size") ?? 0), PATTERN.length);
    sent += size;
    return new Response(PATTERN.subarray(0, size));
  }
  if (url.pathname === "/count") return Response.json({ received, sent });
  return new Response("?", { status: 404 });
});
