// devloop's logs are the terminal here: keep Vite from clearing them
export default { clearScreen: false };
