//! The API's contract test: schemathesis (pinned) against `/openapi.json` of a fresh API,
//! every check and phase (examples, coverage, fuzzing, stateful), a fixed seed, so a
//! schema looser or stricter than the handlers fails the build.

use std::{path::Path, process::Command};

use cacheme_testsupport::{Stores, free_port};

use cacheme_harness::{frontend, run};
use cacheme_packaging::Tools;

/// Examples per operation in CI; run `schemathesis` by hand with more (and another seed)
/// when the schema changes.
const EXAMPLES: &str = "50";
const SEED: &str = "1";

/// `cargo xtask contract`: finds or starts the stores and the pinned tools, then [`test`].
pub fn standalone(root: &Path) -> anyhow::Result<()> {
    let stores = cacheme_harness::find_stores()?;
    let tools = Tools::ensure(root)?;
    test(root, &stores, &tools)
}

pub fn test(root: &Path, stores: &Stores, tools: &Tools) -> anyhow::Result<()> {
    let token = format!("contract-{}-{}", std::process::id(), free_port()?);
    let (server, url) = frontend::start_api(root, stores, None, &token)?;
    let mut st = Command::new(tools.schemathesis());
    st.arg("run")
        .arg(format!("{url}/openapi.json"))
        .args([
            "--checks",
            "all",
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .env("NO_COLOR", "1");
    let result = run(
        "schemathesis 4.32.5 against /openapi.json (all checks, seed 1)",
        st,
    );
    drop(server);
    result
}
