//! stub
pub struct InstallReport;
pub struct InstallRequest;
pub struct Progress;
pub enum ScriptPolicy {}
pub fn install() {}
