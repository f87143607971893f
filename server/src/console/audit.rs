//! Access is custody: what staff do in the console becomes signed server custody events naming
//! the account (`detail.staff`, `detail.role`, and the first 16 hex digits of the session's
//! SHA-256 in `detail.session`), in the same hash chain as every other server event, so they show
//! in the item's custody timeline and travel in packages (`custody.jsonl`).
//!
//! | event | when (clip_id) |
//! |---|---|
//! | `staff_added`, `staff_setup`, `staff_disabled` | account made, password set, disabled |
//! | `staff_login`, `staff_logout` | a session began or was ended |
//! | `media_viewed` | an item's media was first opened in a session (item) |
//! | `media_downloaded` | an original was downloaded (item), every time |
//! | `exported` (with `exported_by` the staff name) | a package was built (each item) |
//! | `package_downloaded` | a package ZIP was downloaded (each item) |
//! | `hold`, `hold_released` | a legal hold placed or released (item) |
//! | `revoked` | a device was revoked (with the staff account) |
//! | `token_issued` | an enrolment token was made in the console |
//! | `records_request_logged`, `records_request_built`, `release_approved` | a records request's steps |
//! | `sensitive_override` | a supervisor released items tagged `minor_present`/`victim_present`, with the written reason (each such item) |

use super::auth::Staff;
use crate::error::Result;
use crate::state::AppState;

/// Appends a custody event for what `staff` did, `extra` merged into the staff detail.
pub(crate) fn record(app: &AppState, staff: &Staff, event: &str, clip_id: Option<&str>, extra: serde_json::Value) -> Result<()> {
    let mut detail = staff.who();
    if let (Some(d), serde_json::Value::Object(e)) = (detail.as_object_mut(), extra) {
        d.extend(e);
    }
    app.custody(event, clip_id, detail)
}
