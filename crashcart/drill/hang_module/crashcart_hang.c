// SPDX-License-Identifier: GPL-2.0
/*
 * crashcart_hang: hang CPUs with interrupts disabled, for the crashcart NMI drill.
 *
 * Loading it starts one kernel thread per online CPU except CPU 0 (or on every CPU with
 * all_cpus=1); each thread disables local interrupts and spins forever in
 * crashcart_hang_spin(). Timer interrupts, IPIs and the scheduler cannot reach those CPUs any
 * more: only a non-maskable interrupt can. The drill then injects an NMI and expects the
 * kernel to panic ("NMI: Not continuing") and kdump to save a dump whose stacks show
 * crashcart_hang_spin on the hung CPUs.
 *
 * Never load this outside a throw-away test guest: the CPUs do not come back.
 */
#include <linux/module.h>
#include <linux/kthread.h>
#include <linux/cpumask.h>
#include <linux/irqflags.h>
#include <linux/sched.h>
#include <linux/printk.h>

static bool all_cpus;
module_param(all_cpus, bool, 0444);
MODULE_PARM_DESC(all_cpus, "also hang CPU 0 (the loading CPU spins in the thread, not in init)");

static noinline void crashcart_hang_spin(void)
{
	local_irq_disable();
	for (;;)
		cpu_relax();
}

static int crashcart_hang_thread(void *data)
{
	pr_emerg("crashcart_hang: CPU %d spinning with interrupts disabled\n",
		 smp_processor_id());
	crashcart_hang_spin();
	return 0;
}

static int __init crashcart_hang_init(void)
{
	struct task_struct *task;
	unsigned int cpu;

	for_each_online_cpu(cpu) {
		if (cpu == 0 && !all_cpus && num_online_cpus() > 1)
			continue;
		task = kthread_create_on_cpu(crashcart_hang_thread, NULL, cpu,
					     "crashcart_hang/%u");
		if (IS_ERR(task))
			return PTR_ERR(task);
		wake_up_process(task);
	}
	return 0;
}
module_init(crashcart_hang_init);

/* No module_exit: the module cannot be unloaded while its CPUs spin. */
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("crashcart drill: hang CPUs with interrupts disabled");
