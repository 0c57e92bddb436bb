//! Process trees: a child and everything it starts, ended together.
//!
//! Unix: the child leads its own process group, and the group is killed. Windows: the child
//! is put in a job object that kills its processes when the job is terminated or closed
//! (and `taskkill /T` is the fallback). Used by the backends and the built-in servers'
//! commands; nothing else here.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when a signal ends the gateway: a backend that ends at the same moment was most
/// likely ended by the same signal (systemd sends SIGTERM to every process of the unit).
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The gateway is stopping on a signal (Ctrl-C, SIGTERM).
pub fn note_stopping() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// Whether the gateway is stopping on a signal.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Unix: the process groups this process has started and not yet ended, for `kill_all`.
#[cfg(unix)]
static GROUPS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

#[cfg(unix)]
fn groups() -> std::sync::MutexGuard<'static, Vec<u32>> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets up `cmd` so that the child it starts heads a tree of its own.
pub fn prepare(cmd: &mut Command) {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        // Its own process group (a console Ctrl-C does not reach it), and no window.
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
    }
    #[cfg(not(any(unix, windows)))]
    let _ = cmd;
}

/// Takes charge of a just-started child's tree (Windows: puts it in a job object).
pub fn adopt(child: &Child) {
    #[cfg(windows)]
    job::adopt(child);
    #[cfg(unix)]
    groups().push(child.id());
    #[cfg(not(any(unix, windows)))]
    let _ = child;
}

/// Ends every tree this process started and has not ended yet: the last act of a panic
/// (the release build aborts on panic, which would otherwise leave them running). On
/// Windows the job objects do it: the OS closes their handles when the process ends.
pub fn kill_all() {
    #[cfg(unix)]
    kill_groups(std::mem::take(&mut *groups()));
}

#[cfg(unix)]
fn kill_groups(groups: Vec<u32>) {
    for pid in groups {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) on a process group we started; no memory involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// Ends the tree started by process `pid` (it may be gone already).
pub fn kill(pid: u32) {
    #[cfg(unix)]
    groups().retain(|&p| p != pid);
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    #[cfg(windows)]
    job::kill(pid);
    #[cfg(not(any(unix, windows)))]
    let _ = pid;
}

/// The tree's root ended normally: let go of it (Windows: closing its job ends whatever
/// it left running; Unix: nothing to do).
pub fn release(pid: u32) {
    #[cfg(windows)]
    job::release(pid);
    #[cfg(unix)]
    groups().retain(|&p| p != pid);
    #[cfg(not(any(unix, windows)))]
    let _ = pid;
}

/// Ends the tree and reaps the child.
pub fn kill_child(child: &mut Child) {
    kill(child.id());
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(windows)]
mod job {
    //! Windows job objects, declared by hand (a handful of kernel32 calls).
    use std::collections::HashMap;
    use std::ffi::c_void;
    use std::os::windows::io::AsRawHandle;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Mutex, OnceLock};

    type Handle = *mut c_void;

    #[repr(C)]
    #[derive(Default)]
    struct BasicLimits {
        per_process_user_time_limit: i64,
        per_job_user_time_limit: i64,
        limit_flags: u32,
        minimum_working_set_size: usize,
        maximum_working_set_size: usize,
        active_process_limit: u32,
        affinity: usize,
        priority_class: u32,
        scheduling_class: u32,
    }

    #[repr(C)]
    #[derive(Default)]
    struct ExtendedLimits {
        basic: BasicLimits,
        io_counters: [u64; 6],
        process_memory_limit: usize,
        job_memory_limit: usize,
        peak_process_memory_used: usize,
        peak_job_memory_used: usize,
    }

    const JOB_OBJECT_EXTENDED_LIMIT_INFORMATION: i32 = 9;
    const JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: u32 = 0x2000;

    unsafe extern "system" {
        fn CreateJobObjectW(attributes: *mut c_void, name: *const u16) -> Handle;
        fn SetInformationJobObject(job: Handle, class: i32, info: *mut c_void, length: u32) -> i32;
        fn AssignProcessToJobObject(job: Handle, process: Handle) -> i32;
        fn TerminateJobObject(job: Handle, exit_code: u32) -> i32;
        fn CloseHandle(handle: Handle) -> i32;
    }

    /// Job handles by the pid of the process whose tree they hold.
    struct Jobs(Mutex<HashMap<u32, usize>>);

    fn jobs() -> &'static Jobs {
        static JOBS: OnceLock<Jobs> = OnceLock::new();
        JOBS.get_or_init(|| Jobs(Mutex::new(HashMap::new())))
    }

    pub fn adopt(child: &Child) {
        // SAFETY: plain kernel32 calls on handles this function owns (the job) or borrows
        // for the call (the child's process handle); the info struct lives on the stack.
        unsafe {
            let job = CreateJobObjectW(std::ptr::null_mut(), std::ptr::null());
            if job.is_null() {
                return;
            }
            let mut info = ExtendedLimits::default();
            info.basic.limit_flags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            let size = std::mem::size_of::<ExtendedLimits>() as u32;
            let set = SetInformationJobObject(
                job,
                JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
                (&mut info as *mut ExtendedLimits).cast(),
                size,
            );
            if set == 0 || AssignProcessToJobObject(job, child.as_raw_handle().cast()) == 0 {
                CloseHandle(job);
                return;
            }
            if let Ok(mut jobs) = jobs().0.lock() {
                jobs.insert(child.id(), job as usize);
            }
        }
    }

    pub fn release(pid: u32) {
        if let Some(job) = jobs().0.lock().ok().and_then(|mut j| j.remove(&pid)) {
            // SAFETY: the handle came from CreateJobObjectW and is closed exactly once here.
            unsafe {
                CloseHandle(job as Handle);
            }
        }
    }

    pub fn kill(pid: u32) {
        let job = jobs().0.lock().ok().and_then(|mut j| j.remove(&pid));
        match job {
            // SAFETY: the handle came from CreateJobObjectW and is closed exactly once here.
            Some(job) => unsafe {
                TerminateJobObject(job as Handle, 1);
                CloseHandle(job as Handle);
            },
            // Not ours (or no job could be made): ask taskkill for the tree.
            None => {
                let _ = Command::new("taskkill")
                    .args(["/T", "/F", "/PID", &pid.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn kill_all_ends_every_tree_not_yet_ended() {
        let start = |script: &str| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", script]);
            prepare(&mut cmd);
            let child = cmd.spawn().unwrap();
            adopt(&child);
            child
        };
        // A tree with a grandchild, and one ended the usual way first.
        let mut tree = start("sleep 30 & sleep 30");
        let mut ended = start("sleep 30");
        kill_child(&mut ended);
        assert!(!groups().contains(&ended.id()));
        assert!(groups().contains(&tree.id()));
        // What kill_all does, on this tree only (other tests' trees share the registry).
        groups().retain(|&p| p != tree.id());
        kill_groups(vec![tree.id()]);
        let status = tree.wait().unwrap();
        assert!(!status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // SAFETY: probing a process group with signal 0.
        while unsafe { libc::kill(-(tree.id() as i32), 0) } == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the grandchild outlived kill_all"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
