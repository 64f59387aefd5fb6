export const label = "counter";
