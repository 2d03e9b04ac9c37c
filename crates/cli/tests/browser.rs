//! The studio in a real headless browser: Debian's `chromium` driven through `chromedriver` (WebDriver) from
//! Rust, against the real `ferrotune serve` on a free loopback port in a temporary home, training the tiny llama
//! fixture for a few steps. It walks what a user does: upload a dataset and map its columns, create an experiment
//! from the form, watch it finish with points on the loss chart, chat and get a streamed answer, start a second
//! experiment from the first one's config, compare them (config differences only), and delete one.
//!
//! `.ci/run` installs chromium and chromium-driver. Without a driver the test says so and fails under CI
//! (`CI=true`); elsewhere it is skipped with that message. `FERROTUNE_SCREENSHOTS=DIR` saves the README's
//! screenshots (experiment detail, chat) there and `FERROTUNE_BROWSER_BACKBONE=DIR` trains that backbone instead
//! of the fixture — see `tools/screenshots.sh`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(240);

/// Kills its process when dropped (the test may fail midway).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FERROTUNE_CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tiny llama fixture, or `FERROTUNE_BROWSER_BACKBONE` (the screenshot script passes a real model so the
/// chat answer reads like one).
fn fixture() -> PathBuf {
    match std::env::var_os("FERROTUNE_BROWSER_BACKBONE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/llama3_rope"),
    }
}

/// Starts `ferrotune serve` and returns it with its address.
fn start_server(home: &Path) -> (Guard, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(["serve", "--port", "0", "--no-demo"])
        .env("FERROTUNE_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("the server prints its address")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (Guard(child), url)
}

fn start_driver(driver: &Path) -> (Guard, String) {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Guard(child), format!("http://127.0.0.1:{port}"))
}

async fn browser(driver: &str) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"]
        }
    });
    let caps = match caps {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a browser session")
}

/// Polls `script` (a JS expression) until it is truthy.
async fn wait_js(c: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let v = c
            .execute(&format!("return ({script});"), vec![])
            .await
            .unwrap_or(Value::Null);
        if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
            return v;
        }
        if Instant::now() > deadline {
            let body = c
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {what}; the page says:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn css(c: &Client, selector: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("no element `{selector}`: {e}"))
}

/// Types into the form field of setting `key`.
async fn set_field(c: &Client, key: &str, value: &str) {
    // A folded setting is unfolded first, as a person would.
    c.execute(
        "const d = document.getElementById(arguments[0])?.closest('details'); if (d) d.open = true;",
        vec![json!(format!("f-{key}"))],
    )
    .await
    .unwrap();
    let e = css(c, &format!("[id=\"f-{key}\"]")).await;
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("FERROTUNE_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), c.screenshot().await.unwrap()).unwrap();
    }
}

/// Fills the new-experiment form for the tiny fixture and starts it; returns when its page shows.
async fn start_from_form(c: &Client, name: &str, lr: &str) {
    set_field(c, "experiment_name", name).await;
    set_field(c, "training.learning_rate", lr).await;
    set_field(c, "training.batch_size", "4").await;
    set_field(c, "training.lora_r", "2").await;
    set_field(c, "dataset.validation_size", "0.1").await;
    set_field(c, "prediction.max_length_inference", "4").await;
    // One button: a clean check starts the experiment at once (the verdict says so beside the button).
    css(c, "#check-start").await.click().await.unwrap();
    let outcome = wait_js(
        c,
        "the experiment page (or the verdict that held it back)",
        &format!("document.querySelector('#exp-name')?.textContent === '{name}' || document.querySelector('#verdict-errors')?.textContent || document.querySelector('#verdict-warnings')?.textContent"),
    )
    .await;
    assert_eq!(outcome, json!(true), "the form did not start {name}");
}

#[tokio::test]
async fn the_studio_in_a_real_browser() {
    let Some(driver) = chromedriver() else {
        let msg =
            "chromedriver not found: install Debian's chromium and chromium-driver (.ci/run does)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED the_studio_in_a_real_browser: {msg}");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let (_server, url) = start_server(&home);
    let (_driver, driver_url) = start_driver(&driver);
    let c = browser(&driver_url).await;

    // 0. Register the backbone on the Backbones page.
    c.goto(&format!("{url}/backbones")).await.unwrap();
    css(&c, "#bb-name")
        .await
        .send_keys("tiny-llama")
        .await
        .unwrap();
    let path = fixture().display().to_string();
    css(&c, "#bb-path").await.send_keys(&path).await.unwrap();
    css(&c, "#register-backbone button")
        .await
        .click()
        .await
        .unwrap();
    c.goto(&format!("{url}/backbones")).await.unwrap();
    wait_js(
        &c,
        "the backbone row",
        "document.querySelector('#backbones').innerText.includes('LlamaForCausalLM')",
    )
    .await;

    // 1. Upload a dataset and map its columns.
    let data = tmp.path().join("arith.csv");
    let mut csv = String::from("question,reply,note\n");
    for i in 0..40 {
        csv.push_str(&format!("Add {i} and {}.,{},n{i}\n", 2 * i, 3 * i));
    }
    std::fs::write(&data, csv).unwrap();
    c.goto(&format!("{url}/datasets/new")).await.unwrap();
    css(&c, "#ds-file")
        .await
        .send_keys(data.to_str().unwrap())
        .await
        .unwrap();
    css(&c, "#ds-name").await.send_keys("arith").await.unwrap();
    css(&c, "#ds-preview").await.click().await.unwrap();
    wait_js(&c, "the preview", "!document.querySelector('#dataset-mapping').hidden && document.querySelectorAll('#preview tbody tr').length === 5").await;
    let columns = wait_js(
        &c,
        "columns",
        "[...document.querySelectorAll('#preview thead th')].map(t => t.textContent).join(',')",
    )
    .await;
    assert_eq!(columns, json!("question,reply,note"));
    css(&c, "#map-prompt")
        .await
        .select_by_value("question")
        .await
        .unwrap();
    css(&c, "#map-answer")
        .await
        .select_by_value("reply")
        .await
        .unwrap();
    css(&c, "#ds-import").await.click().await.unwrap();
    wait_js(
        &c,
        "the dataset page",
        "document.querySelector('#dataset-name')?.textContent === 'arith'",
    )
    .await;
    let bubbles = wait_js(
        &c,
        "chat bubbles",
        "document.querySelectorAll('#conversations .bubble.user').length",
    )
    .await;
    assert_eq!(bubbles, json!(30), "the sample shows 30 turns");
    let first = wait_js(
        &c,
        "a user bubble",
        "document.querySelector('#conversations .bubble.user').textContent",
    )
    .await;
    assert!(first.as_str().unwrap().contains("Add 0 and 0."), "{first}");

    // 2. Create an experiment from the form, on the tiny backbone, from the dataset's page.
    css(&c, "#dataset-new-experiment")
        .await
        .click()
        .await
        .unwrap();
    wait_js(
        &c,
        "the form",
        "document.querySelector('#pick-dataset')?.value === 'arith'",
    )
    .await;
    let hidden = wait_js(
        &c,
        "dataset fields hidden",
        "document.querySelector('[data-key=\"dataset.train_dataframe\"]').hidden",
    )
    .await;
    assert_eq!(hidden, json!(true));
    // An experiment file fills the form (every field: so before picking the backbone).
    let yaml = tmp.path().join("imported.yaml");
    std::fs::write(&yaml, "training:\n  lora_alpha: 7\n").unwrap();
    css(&c, "#import-yaml")
        .await
        .send_keys(yaml.to_str().unwrap())
        .await
        .unwrap();
    wait_js(
        &c,
        "the imported value",
        "document.querySelector('[id=\"f-training.lora_alpha\"]').value === '7'",
    )
    .await;
    let backbone = fixture().display().to_string();
    css(&c, "#pick-backbone")
        .await
        .select_by_value(&backbone)
        .await
        .unwrap();
    // A bad value is reported beside its field.
    set_field(&c, "training.learning_rate", "fast").await;
    css(&c, "#check-start").await.click().await.unwrap();
    let err = wait_js(
        &c,
        "a field error",
        "document.querySelector('[id=\"err-training.learning_rate\"]').textContent",
    )
    .await;
    assert!(err.as_str().unwrap().contains("number"), "{err}");
    start_from_form(&c, "first", "0.01").await;

    // 3. Watch it reach finished with points on the loss chart (live, over SSE).
    wait_js(
        &c,
        "finished",
        "document.querySelector('#exp-status').textContent === 'finished'",
    )
    .await;
    // One point per optimizer step (36 training rows in batches of 4).
    wait_js(
        &c,
        "9 loss points",
        "Number(document.querySelector('#chart-train_loss').dataset.points || 0) === 9",
    )
    .await;
    wait_js(
        &c,
        "validation points",
        "Number(document.querySelector('#chart-validation_loss').dataset.points || 0)",
    )
    .await;
    screenshot(&c, "experiment.png").await;

    // 4. Chat and receive a streamed answer.
    css(&c, "#tab-chat").await.click().await.unwrap();
    css(&c, "#chat-max").await.clear().await.unwrap();
    css(&c, "#chat-max").await.send_keys("12").await.unwrap();
    css(&c, "#chat-input")
        .await
        .send_keys("Add 2 and 4.")
        .await
        .unwrap();
    css(&c, "#chat-send").await.click().await.unwrap();
    wait_js(
        &c,
        "the answer",
        "document.querySelector('#chat-history .bubble.assistant')?.dataset.done === 'true'",
    )
    .await;
    let note = wait_js(
        &c,
        "the answer's note",
        "document.querySelector('#chat-note').textContent",
    )
    .await;
    assert!(note.as_str().unwrap().contains("trained adapter"), "{note}");
    assert!(
        note.as_str().unwrap().contains("12 tokens") || note.as_str().unwrap().contains("tokens/s"),
        "{note}"
    );
    c.execute(
        "document.querySelector('#experiment h1').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    screenshot(&c, "chat.png").await;

    // 4b. Predict new rows from the Predict tab and get the CSV link.
    let new_rows = tmp.path().join("new-rows.csv");
    std::fs::write(&new_rows, "prompt\nAdd 2 and 4.\nAdd 3 and 6.\n").unwrap();
    css(&c, "#tab-predict").await.click().await.unwrap();
    css(&c, "#predict-file")
        .await
        .send_keys(&new_rows.display().to_string())
        .await
        .unwrap();
    css(&c, "#predict-start").await.click().await.unwrap();
    let link = wait_js(
        &c,
        "the predictions link",
        "!document.querySelector('#predict-download').hidden && [document.querySelector('#predict-status').textContent, document.querySelector('#predict-download').getAttribute('href')]",
    )
    .await;
    assert!(
        link[0]
            .as_str()
            .unwrap()
            .starts_with("2 rows predicted in "),
        "{link}"
    );
    assert_eq!(
        link[1],
        json!("/api/experiments/first/predict/new-rows.predictions.csv")
    );

    // 4c. Downloads: the adapter is offered without a reload (the tab followed the run to `finished`), and a GGUF
    // export runs in the background until its download link and path appear.
    css(&c, "#tab-downloads").await.click().await.unwrap();
    wait_js(
        &c,
        "the adapter download marked ready",
        "document.querySelector('.not-ready[data-download=\"adapter\"]').hidden",
    )
    .await;
    c.execute(
        "document.querySelector('#export-gguf-type').value = 'q4_k_m'",
        vec![],
    )
    .await
    .unwrap();
    css(&c, "[data-export=\"gguf\"]")
        .await
        .click()
        .await
        .unwrap();
    let export = wait_js(
        &c,
        "the GGUF export's link",
        "(a => a && [a.textContent, a.getAttribute('href'), a.parentElement.textContent])(document.querySelector('#export-list li[data-kind=\"gguf-q4_k_m\"] a'))",
    )
    .await;
    assert_eq!(export[0], json!("Download gguf-q4_k_m"));
    assert_eq!(
        export[1],
        json!("/api/experiments/first/exports/gguf-q4_k_m/download")
    );
    assert!(
        export[2].as_str().unwrap().contains("exports/gguf-q4_k_m"),
        "{export}"
    );

    // 5. A second experiment from the first one's config, with another learning rate.
    c.goto(&format!("{url}/experiments/new?from=first"))
        .await
        .unwrap();
    let lr = wait_js(
        &c,
        "the copied config",
        "document.querySelector('[id=\"f-training.learning_rate\"]').value",
    )
    .await;
    assert_eq!(lr, json!("0.01"));
    // The copy keeps the first run's registered dataset and backbone: the pickers show them, not internal paths.
    let picked = wait_js(
        &c,
        "the pickers",
        "[document.querySelector('#pick-dataset').value, document.querySelector('#pick-backbone').selectedOptions[0].textContent, document.querySelector('[data-key=\"dataset.train_dataframe\"]').hidden]",
    )
    .await;
    assert_eq!(picked, json!(["arith", "tiny-llama", true]));
    // Labels read as words, the key small beside them; help renders code spans; the rarely changed settings fold.
    let label = wait_js(
        &c,
        "a label",
        "document.querySelector('label[for=\"f-training.batch_size\"]').textContent",
    )
    .await;
    assert!(
        label
            .as_str()
            .unwrap()
            .starts_with("Batch size training.batch_size"),
        "{label}"
    );
    let folded = wait_js(
        &c,
        "folded settings",
        "[document.querySelector('[data-key=\"training.batch_size\"]').closest('details'), document.querySelector('[data-key=\"training.differential_learning_rate_layers\"]').closest('details')?.open]",
    )
    .await;
    assert_eq!(
        folded,
        json!([null, false]),
        "basic settings open, the rest folded"
    );
    let help = wait_js(
        &c,
        "help text",
        "[...document.querySelectorAll('.field .help')].map(h => h.innerHTML).join(' ')",
    )
    .await;
    assert!(
        help.as_str().unwrap().contains("<code>") && !help.as_str().unwrap().contains('`'),
        "code spans render as code: {help}"
    );
    start_from_form(&c, "second", "0.02").await;
    wait_js(
        &c,
        "second finished",
        "document.querySelector('#exp-status').textContent === 'finished'",
    )
    .await;

    // 6. Compare the two: overlaid charts, config differences only.
    c.goto(&format!("{url}/experiments")).await.unwrap();
    wait_js(
        &c,
        "two rows",
        "document.querySelectorAll('#experiments tbody tr[data-name]').length === 2",
    )
    .await;
    // Both rows name the registered dataset and backbone; the actions read like every other button.
    let row = wait_js(
        &c,
        "the second row",
        "[...document.querySelectorAll('tr[data-name=\"second\"] td')].slice(2, 4).map(t => t.textContent).concat([document.querySelector('tr[data-name=\"second\"] button[data-action=\"stop\"]').textContent])",
    )
    .await;
    assert_eq!(row, json!(["arith", "tiny-llama", "Stop"]));
    css(&c, "tr[data-name=\"first\"] input[type=checkbox]")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "tr[data-name=\"second\"] input[type=checkbox]")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "#compare-selected").await.click().await.unwrap();
    wait_js(&c, "the compare page", "location.pathname === '/compare'").await;
    let visible = wait_js(&c, "visible config rows", "[...document.querySelectorAll('#compare-config tbody tr')].filter(r => r.offsetParent !== null).map(r => r.querySelector('th').textContent)").await;
    let visible: Vec<&str> = visible
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(visible.contains(&"training.learning_rate"), "{visible:?}");
    assert!(visible.contains(&"experiment_name"), "{visible:?}");
    assert!(
        !visible.contains(&"training.batch_size"),
        "equal settings are hidden: {visible:?}"
    );
    let lines = wait_js(
        &c,
        "two loss lines",
        "document.querySelectorAll('#cmp-train_loss path.series').length",
    )
    .await;
    assert_eq!(lines, json!(2));
    let legend = wait_js(
        &c,
        "the legend",
        "[...document.querySelectorAll('#cmp-train_loss .legend text')].map(t => t.textContent)",
    )
    .await;
    assert_eq!(legend, json!(["first", "second"]));
    // No two neighbouring ticks read the same, on any chart.
    let repeated = wait_js(
        &c,
        "tick labels",
        "[...document.querySelectorAll('svg.chart.line')].filter(svg => { const t = [...svg.querySelectorAll('text.tick')].map(x => x.textContent); return t.some((v, i) => i && v === t[i - 1]); }).map(svg => svg.id)",
    )
    .await;
    assert_eq!(repeated, json!([]), "charts with repeated tick labels");
    let best = wait_js(
        &c,
        "best metric",
        "document.querySelector('#compare-summary tbody td:last-child').textContent",
    )
    .await;
    assert!(best.as_str().unwrap().contains("lower is better"), "{best}");

    // 6b. The problem type is the form's first choice: picking DPO reloads the form with its defaults and losses.
    c.goto(&format!("{url}/experiments/new?dataset=arith"))
        .await
        .unwrap();
    let first = wait_js(
        &c,
        "the first field",
        "document.querySelector('#experiment-form .field')?.dataset.key",
    )
    .await;
    assert_eq!(first, json!("problem_type"));
    c.execute(
        "const s = document.getElementById('f-problem_type'); s.value = 'text_dpo_modeling'; s.dispatchEvent(new Event('change', { bubbles: true }));",
        vec![],
    )
    .await
    .unwrap();
    let dpo = wait_js(
        &c,
        "the DPO form",
        "new URLSearchParams(location.search).get('problem_type') === 'text_dpo_modeling' && document.readyState === 'complete' && [document.querySelector('#pick-dataset').value, [...document.getElementById('f-training.loss_function').options].map(o => o.value).join(' '), document.querySelector('[data-key=\"training.beta\"]').hidden]",
    )
    .await;
    assert_eq!(
        dpo,
        json!([
            "arith",
            "DPOLoss DPOHingeLoss DPOIPOLoss KTOPairLoss CPOLoss SimPOLoss ORPOLoss",
            false
        ]),
        "the registered dataset stays picked; DPO's losses and beta show"
    );

    // 7. Delete an experiment (the table updates itself).
    c.goto(&format!("{url}/experiments")).await.unwrap();
    css(
        &c,
        "tr[data-name=\"second\"] button[data-action=\"delete\"]",
    )
    .await
    .click()
    .await
    .unwrap();
    c.accept_alert().await.unwrap();
    wait_js(
        &c,
        "one row",
        "document.querySelectorAll('#experiments tbody tr[data-name]').length === 1",
    )
    .await;
    assert!(
        !home.join("experiments/second").exists(),
        "its folder is gone"
    );
    assert!(home
        .join("experiments/first/adapter/adapter_config.json")
        .is_file());

    // The home page counts what is left, from the live list.
    c.goto(&url).await.unwrap();
    wait_js(&c, "one finished on the home page", "document.querySelector('#statuses li[data-status=\"finished\"] .count').textContent === '1'").await;

    // The pages also work in a narrow window.
    c.set_window_size(420, 800).await.unwrap();
    c.goto(&format!("{url}/experiments/first")).await.unwrap();
    let overflow = wait_js(
        &c,
        "the layout",
        "String(document.documentElement.scrollWidth <= window.innerWidth + 1)",
    )
    .await;
    assert_eq!(overflow, json!("true"), "no horizontal scrolling at 420 px");
    c.close().await.unwrap();
}
