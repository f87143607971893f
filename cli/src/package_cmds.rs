//! Council-office commands for evidence packages, legal hold and retention:
//! `fieldcap package`, `hold`, `release`, `dispose`, `retention`.
//!
//! They work on a server data directory (also while `fieldcap serve` runs on it). Every action
//! is a signed server custody event; see `fieldcap_server::package` and
//! `fieldcap_server::retention`. `fieldcap verify PACKAGE` checks a package
//! (`fieldcap_package::package`).

use anyhow::{bail, Context};
use clap::{ArgGroup, Args};
use fieldcap_server::package::{PackageRequest, Profile, Selection};
use std::path::PathBuf;

/// `fieldcap package`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("selection").required(true).args(["incident", "clip", "from"])))]
pub struct PackageArgs {
    /// Where the server's key, records and originals are.
    #[command(flatten)]
    pub at: crate::store_args::StoreArgs,
    /// Every item of this incident (see `fieldcap incidents`).
    #[arg(long)]
    pub incident: Option<String>,
    /// This item (repeatable).
    #[arg(long)]
    pub clip: Vec<String>,
    /// Items captured from this time (RFC 3339); needs --to.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Items captured until this time (RFC 3339).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// With --from/--to: only items with a fix within RADIUS_M metres of LAT,LON.
    #[arg(long, requires = "from", allow_hyphen_values = true, value_name = "LAT,LON,RADIUS_M")]
    pub near: Option<String>,
    /// Output folder (must not exist); written whole or not at all.
    #[arg(long)]
    pub out: PathBuf,
    /// Who receives the package (e.g. "Los Angeles County District Attorney").
    #[arg(long)]
    pub recipient: String,
    /// Why (case number, request number).
    #[arg(long)]
    pub purpose: String,
    /// full (originals; items become referred) or release (public: derived documents).
    #[arg(long, default_value = "full", value_parser = ["full", "release"])]
    pub profile: String,
    /// Release profile: include items tagged minor_present / victim_present (needs --reason).
    #[arg(long, requires = "reason")]
    pub include_sensitive: bool,
    /// Why sensitive items are included (recorded in custody).
    #[arg(long, requires = "include_sensitive")]
    pub reason: Option<String>,
    /// Also write OUT.zip.
    #[arg(long)]
    pub zip: bool,
    /// Who exports (recorded in custody); default $USER.
    #[arg(long)]
    pub by: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `fieldcap hold`.
#[derive(Args, Debug)]
pub struct HoldArgs {
    /// Where the server's key, records and originals are.
    #[command(flatten)]
    pub at: crate::store_args::StoreArgs,
    /// Item to hold.
    pub clip_id: String,
    /// Why (e.g. litigation hold, case number).
    #[arg(long)]
    pub reason: String,
}

/// `fieldcap release` (of a legal hold).
#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// Where the server's key, records and originals are.
    #[command(flatten)]
    pub at: crate::store_args::StoreArgs,
    /// Item whose holds are released.
    pub clip_id: String,
    /// Why the hold ends.
    #[arg(long)]
    pub reason: String,
}

/// `fieldcap dispose`.
#[derive(Args, Debug)]
pub struct DisposeArgs {
    /// Where the server's key, records and originals are.
    #[command(flatten)]
    pub at: crate::store_args::StoreArgs,
    /// Only list what would be disposed.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `fieldcap retention`.
#[derive(Args, Debug)]
pub struct RetentionArgs {
    /// Where the server's key, records and originals are.
    #[command(flatten)]
    pub at: crate::store_args::StoreArgs,
    /// Set a category's retention: CATEGORY=DAYS (a kind, a tag, or default); repeatable.
    #[arg(long = "set", value_name = "CATEGORY=DAYS")]
    pub set: Vec<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

fn parse_near(s: &str) -> anyhow::Result<(f64, f64, f64)> {
    let v: Vec<f64> = s.split(',').map(|p| p.trim().parse::<f64>()).collect::<Result<_, _>>().context("--near must be LAT,LON,RADIUS_M")?;
    match v.as_slice() {
        [lat, lon, r] if (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon) && *r > 0.0 && r.is_finite() => Ok((*lat, *lon, *r)),
        _ => bail!("--near must be LAT,LON,RADIUS_M with a latitude, a longitude and a positive radius"),
    }
}

/// `fieldcap package …`.
pub fn package(a: &PackageArgs) -> anyhow::Result<i32> {
    a.at.require_records()?;
    let selection = if let Some(i) = &a.incident {
        Selection::Incident(i.clone())
    } else if !a.clip.is_empty() {
        Selection::Clips(a.clip.clone())
    } else {
        let (Some(from), Some(to)) = (&a.from, &a.to) else { bail!("give --incident, --clip or --from and --to") };
        Selection::Window { from: from.clone(), to: to.clone(), near: a.near.as_deref().map(parse_near).transpose()? }
    };
    let profile = if a.profile == "release" { Profile::Release } else { Profile::Full };
    if a.include_sensitive && profile == Profile::Full {
        bail!("--include-sensitive applies to --profile release (a full package holds every selected item)");
    }
    let by = a.by.clone().or_else(|| std::env::var("USER").ok()).filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "unknown".into());
    let req = PackageRequest {
        selection,
        out: a.out.clone(),
        recipient: a.recipient.clone(),
        purpose: a.purpose.clone(),
        profile,
        sensitive_reason: if a.include_sensitive { a.reason.clone() } else { None },
        zip: a.zip,
        exported_by: by,
    };
    let out = fieldcap_server::package::export(a.at.deployment(), &req).context("exporting the package")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("package {} written to {}", out.package_id, out.path.display());
        println!("  {} items, {} bytes, {} profile; export recorded as server custody event {}", out.items, out.bytes, profile.as_str(), out.custody_seq);
        for (why, n) in &out.omitted {
            println!("  left out: {n} item(s), {}", why.replace('_', " "));
        }
        if let Some(z) = &out.zip {
            println!("  zip: {}", z.display());
        }
        let fp = fieldcap_server::records::Records::open(a.at.deployment())
            .map(|r| fieldcap_evidence::identity::key_fingerprint(&r.server_key().verifying_key()))
            .context("reading the server key")?;
        println!("  server key fingerprint {fp}: publish it where recipients can get it out of band; they pin it");
        println!("  check it with: fieldcap verify {} --server-key {fp}   (or sh VERIFY.txt {fp} inside it)", out.path.display());
    }
    Ok(0)
}

/// `fieldcap hold DATA CLIP_ID --reason`.
pub fn hold(a: &HoldArgs) -> anyhow::Result<i32> {
    a.at.require_records()?;
    fieldcap_server::retention::hold(a.at.deployment(), &a.clip_id, &a.reason).context("placing the hold")?;
    println!("legal hold placed on {}", a.clip_id);
    Ok(0)
}

/// `fieldcap release DATA CLIP_ID --reason`.
pub fn release(a: &ReleaseArgs) -> anyhow::Result<i32> {
    a.at.require_records()?;
    let n = fieldcap_server::retention::release(a.at.deployment(), &a.clip_id, &a.reason).context("releasing the hold")?;
    if n == 0 {
        println!("{} had no active hold", a.clip_id);
    } else {
        println!("released {n} hold(s) on {}", a.clip_id);
    }
    Ok(0)
}

/// `fieldcap dispose --data DIR [--dry-run]`.
pub fn dispose(a: &DisposeArgs) -> anyhow::Result<i32> {
    a.at.require_records()?;
    let r = fieldcap_server::retention::dispose(a.at.deployment(), chrono::Utc::now(), a.dry_run).context("disposing")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(0);
    }
    let verb = if a.dry_run { "would dispose" } else { "disposed" };
    for c in &r.disposed {
        println!("{verb} {c}");
    }
    for (c, why) in &r.kept {
        println!("kept {c} (past retention but {why})");
    }
    println!("{} item(s) {verb}, {} kept", r.disposed.len(), r.kept.len());
    Ok(0)
}

/// `fieldcap retention --data DIR [--set CATEGORY=DAYS]…`.
pub fn retention(a: &RetentionArgs) -> anyhow::Result<i32> {
    a.at.require_records()?;
    for s in &a.set {
        let (cat, days) = s.split_once('=').ok_or_else(|| anyhow::anyhow!("--set takes CATEGORY=DAYS"))?;
        let days: i64 = days.trim().parse().context("--set days must be a whole number")?;
        fieldcap_server::retention::set_policy(a.at.deployment(), cat.trim(), days).context("setting the retention policy")?;
    }
    let pol = fieldcap_server::retention::policy(a.at.deployment())?;
    let st = fieldcap_server::retention::status(a.at.deployment(), chrono::Utc::now())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "policy": pol, "default_days": fieldcap_server::retention::DEFAULT_RETENTION_DAYS, "items": st }))?);
        return Ok(0);
    }
    println!("policy (days; the longest matching category applies; default {} unless set):", fieldcap_server::retention::DEFAULT_RETENTION_DAYS);
    for (c, d) in &pol {
        println!("  {c:<18} {d}");
    }
    for s in &st {
        let state = if s.disposed_at.is_some() {
            "disposed".to_string()
        } else if s.holds > 0 {
            "held".to_string()
        } else if s.referrals > 0 {
            "referred".to_string()
        } else if s.due {
            "due for disposal".to_string()
        } else {
            format!("kept until {}", s.until)
        };
        println!("{}  {:<11} {:>5} d ({})  {state}", s.clip_id, s.kind, s.days, s.category);
    }
    Ok(0)
}
