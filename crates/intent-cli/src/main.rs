//! `intent`: the command-line tool. Thin: parsing, context for errors, and calls into the
//! library crates.

mod cmd_compare;
mod cmd_data;
mod cmd_eval;
mod cmd_models;
mod cmd_ncf;
mod cmd_retrain;
mod cmd_schedule;
mod cmd_serve;
mod cmd_train;
mod cmd_zero_shot;
mod common;
mod embedded;
mod flags;
mod pipeline;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Labeled utterances in; trained, evaluated, saved and queried intent classifiers out.
#[derive(Parser, Debug)]
#[command(name = "intent", version, about, long_about = None)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// CPU threads for tensor work (default: 1 for MLP training, whose matrices are too small
    /// to gain from a second thread on a small machine; all cores otherwise).
    #[arg(long, global = true, env = "INTENT_THREADS")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate, inspect, import, augment, split and merge data.
    #[command(subcommand)]
    Data(cmd_data::DataCommand),
    /// Train a model.
    #[command(subcommand)]
    Train(cmd_train::TrainCommand),
    /// Evaluate a model on labeled data: summary, report folder, optional quality gate.
    Eval(cmd_eval::EvalArgs),
    /// Predict labels for texts (arguments, or one text per line on stdin).
    Predict(cmd_eval::PredictArgs),
    /// Recommend items for a user of an NCF model (one JSON line per item).
    Recommend(cmd_ncf::RecommendArgs),
    /// Zero-shot classifier from a sentence-embedding model and label descriptions (no
    /// training): writes a model folder for eval/predict and/or classifies texts.
    ZeroShot(cmd_zero_shot::ZeroShotArgs),
    /// Train several model kinds on one split, evaluate them on one test set, print a
    /// leaderboard, and optionally register the best one that passes the gate.
    Compare(cmd_compare::CompareArgs),
    /// Split → augment (training part) → train → evaluate → gate → save a versioned model →
    /// sample predictions. With no arguments, runs on the example data set embedded in the binary.
    Pipeline(pipeline::PipelineArgs),
    /// The model registry: list, show, register, promote, rollback, gc.
    #[command(subcommand)]
    Models(cmd_models::ModelsCommand),
    /// Retrain a registry model when its triggers fire (`--force`, `--dry-run`, `--status`).
    Retrain(cmd_retrain::RetrainArgs),
    /// Run `intent retrain` monthly from cron: install (or print), status, remove.
    #[command(subcommand)]
    Schedule(cmd_schedule::ScheduleCommand),
    /// Serve a model over HTTP (prediction, metrics, hot-swap, query log, labeling queue).
    Serve(cmd_serve::ServeArgs),
    /// Print the shell completion script
    /// (`intent completions bash > ~/.local/share/bash-completion/completions/intent`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn tune_allocator() {
    // Every tensor op allocates its output; glibc hands large freed blocks back to the kernel
    // and the next op page-faults them in again. Raising the thresholds keeps them in the heap
    // (measured in the burn primer: ~18% faster training steps).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    // Before any thread starts: it sets an environment variable the CUDA driver reads.
    #[cfg(feature = "cuda")]
    intent_train::kernels::keep_cuda_jit_cache_with_kernels();
    intent_train::engine::flush_denormals();
    tune_allocator();
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "intent", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    // `intent … | head` should end quietly as other command-line tools do, not panic on a
    // closed pipe. The server keeps Rust's default (SIGPIPE ignored): sockets report errors.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_)) {
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(cli.verbose, cli.quiet);
    let mlp_training = match &cli.command {
        Command::Train(cmd_train::TrainCommand::Mlp(_)) => true,
        Command::Retrain(_) => true,
        Command::Pipeline(p) => p.model == "mlp",
        _ => false,
    };
    let threads = cli.threads.or(mlp_training.then_some(1));
    if threads == Some(0) {
        eprintln!("error: --threads must be at least 1");
        return ExitCode::from(2);
    }
    // The global pool is what burn's CPU backend and the optimizer use.
    let mut pool = rayon::ThreadPoolBuilder::new().start_handler(|_| intent_train::engine::flush_denormals());
    if let Some(n) = threads {
        pool = pool.num_threads(n);
    }
    if let Err(e) = pool.build_global() {
        tracing::warn!("could not configure the thread pool: {e}");
    }
    // Training commands name options by their flags (the libraries name fields).
    let option_names = match &cli.command {
        Command::Train(cmd_train::TrainCommand::Ncf(_)) => Some(flags::Flags::Ncf),
        Command::Train(_) | Command::Pipeline(_) => Some(flags::Flags::Classifier),
        _ => None,
    };
    let result = match cli.command {
        Command::Data(c) => cmd_data::run(c),
        Command::Train(c) => cmd_train::run(c),
        Command::Eval(a) => cmd_eval::eval(a),
        Command::Predict(a) => cmd_eval::predict(a),
        Command::Recommend(a) => cmd_ncf::recommend(a),
        Command::Pipeline(a) => pipeline::run(a),
        Command::Compare(a) => cmd_compare::run(a),
        Command::ZeroShot(a) => cmd_zero_shot::run(a),
        Command::Serve(a) => cmd_serve::run(a),
        Command::Models(c) => cmd_models::run(c),
        Command::Retrain(a) => cmd_retrain::run(a),
        Command::Schedule(c) => cmd_schedule::run(c),
        Command::Completions { .. } => unreachable!("answered before logging starts"),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            match option_names {
                Some(f) => eprintln!("error: {}", flags::name_flags(&e, f)),
                None => eprintln!("error: {}", flags::error_text(&e)),
            }
            ExitCode::from(2)
        }
    }
}
