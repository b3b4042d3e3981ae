// Misuses that tsc --strict must refuse, proving that the generated types are real. Each line
// marked "expect TSnnnn" must get that error; tests/test_typed_client.py checks that it does and
// that no other line in this folder gets any.
import createClient from "openapi-fetch";
import type { paths } from "./bifrost.js";

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:8080" });
const path = { profile_id: 1 };

export async function misuse(): Promise<string> {
  await client.PUT("/api/governance/access-profiles/{profile_id}", {
    params: { path },
    body: { name: 42 }, // expect TS2322: a name is a string
  });
  await client.PUT("/api/governance/access-profiles/{profile_id}", {
    params: { path },
    body: { rate_limit: { request_max_limit: 100, request_reset_duration: "90s" } }, // expect TS2322: not a reset window
  });
  await client.PUT("/api/governance/access-profiles/{profile_id}", {
    params: { path: { profile_id: "one" } }, // expect TS2322: the id is a number
  });
  await client.POST("/api/governance/access-profiles", { body: { tags: ["no-name"] } }); // expect TS2322: name is required
  await client.PUT("/api/governance/access-profiles/{profile_id}", {
    params: { path },
    body: { auto_rotation_interval: true }, // expect TS2322: a duration string or nanoseconds
  });
  const { data } = await client.GET("/api/governance/access-profiles/{profile_id}", { params: { path } });
  return data?.access_profile.nmae ?? ""; // expect TS2339: no such field
}

// Not refused, so not listed above (openapi-typescript 7.13, openapi-fetch 0.17): through
// openapi-fetch's generic body, an unknown field (`is_active: false` in an update; see
// openapi-ts/openapi-typescript#1769) and a non-object for an all-optional object
// (`rate_limit: "off"`) pass. The mock refuses `rate_limit: "off"` with a 400 and ignores unknown
// fields (docs/behaviour.md). RotationInterval's integer branches each repeat `type: integer`, so
// `auto_rotation_interval` is typed `string | number` rather than `unknown`.
